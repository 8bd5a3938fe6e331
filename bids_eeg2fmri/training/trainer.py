"""One trainer for every torch model.

- Device ``auto``: CUDA when available, else CPU. Mixed precision (bf16 where the GPU supports it,
  else fp16 with a gradient scaler) only on CUDA; CPU runs in float32 so results are reproducible.
- AdamW, gradient-norm clipping, early stopping on a validation set (the best epoch's weights are
  restored at the end), then, for models that support it, the predictions are shrunk towards the
  training mean by the scale that is best on that validation set (:mod:`.shrinkage`).
- A checkpoint after every epoch, written atomically, holding the model, optimiser, scaler, RNG
  states, early-stopping state and the loss history: ``resume=True`` continues from it and, on CPU,
  ends with exactly the weights an uninterrupted run would have. The batch order of epoch ``e``
  comes from a generator seeded with ``(seed, e)``, so it needs no saved state.
- A tqdm bar over epochs, silent when stderr is not a terminal; losses go to a TSV (one per fold).
- Launched by ``torchrun`` with ``WORLD_SIZE > 1`` (see ``docs/hpc.md``): the process group is
  joined (NCCL on CUDA, one GPU per ``LOCAL_RANK``; gloo on CPU), the model is wrapped in
  :class:`~torch.nn.parallel.DistributedDataParallel`, each process trains on its shard of every
  epoch's permutation (``batch_size`` is per process), losses are averaged over all processes so
  every process takes the same early-stopping decisions, and only rank 0 writes checkpoints and
  loss logs. A single process runs exactly the code path it always did.
"""

from __future__ import annotations

import contextlib
import copy
import gc
import inspect
import logging
import os
import random
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from ..bids.derivatives import atomic_path, atomic_write_text
from ..errors import DataError, UsageError
from ..modelfiles import checkpoint_error, checkpoint_safe_globals
from . import distributed as D
from .options import TrainConfig
from .shrinkage import calibrate

LOG = logging.getLogger(__name__)

LOSS_COLUMNS = ("epoch", "train_loss", "val_loss", "lr", "seconds")


@dataclass
class TrainResult:
    """What training produced besides the weights (already loaded into the model)."""

    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = -1
    best_val: float = float("inf")
    stopped_early: bool = False
    resumed_from: int | None = None
    device: str = "cpu"
    #: The validation-calibrated per-target scales of the predictions (:mod:`.shrinkage`); None
    #: when not shrunk.
    shrinkage: np.ndarray | None = None


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` → CUDA if available, else CPU; ``cuda`` without a GPU is a :class:`UsageError`."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda was requested but no CUDA GPU is available")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (CPU and CUDA) generators."""
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)


@contextlib.contextmanager
def deterministic_algorithms() -> Iterator[None]:
    """Run the block with torch's deterministic kernels, then restore the caller's settings.

    On the CPU every op this project's models use is already deterministic for a fixed thread
    count; on CUDA, cuDNN autotuning (``benchmark``) picks kernels by timing and several
    backward kernels accumulate with atomics, so the same seed could give different weights.
    Ops without a deterministic kernel warn instead of failing (``warn_only``). cuBLAS needs
    ``CUBLAS_WORKSPACE_CONFIG`` before its first use in the process; it is set here when absent
    (effective when training is the process's first CUDA work, as at the group level).
    """
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    before = (torch.are_deterministic_algorithms_enabled(),
              torch.is_deterministic_algorithms_warn_only_enabled(),
              torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = before[2:]


def _autocast_dtype(device: torch.device) -> torch.dtype | None:
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def _rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
             "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _to(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def predict(model: torch.nn.Module, dataset: Dataset, *, batch_size: int = 64,
            device: str | torch.device = "auto") -> np.ndarray:
    """Run the inference path (EEG only) over ``dataset``; returns normalised predictions."""
    device = resolve_device(device) if isinstance(device, str) else device
    model = model.to(device).eval()
    out = []
    dtype = _autocast_dtype(device)
    with torch.no_grad(), torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
        for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False):
            out.append(model(batch["x"].to(device)).float().cpu().numpy())
    return np.concatenate(out) if out else np.empty((0, 0), dtype=np.float32)


def _val_sums(model: torch.nn.Module, loader: DataLoader, device: torch.device,
              dtype: torch.dtype | None) -> tuple[float, int]:
    """Sum over samples of the per-sample mean squared error, and the number of samples."""
    model.eval()
    total, n = 0.0, 0
    with torch.no_grad(), torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
        for batch in loader:
            batch = _to(batch, device)
            err = (model(batch["x"]).float() - batch["y"]) ** 2
            total += float(err.mean(dim=1).sum())
            n += err.shape[0]
    return total, n


def _mean_over_processes(total: float, n: int) -> float:
    """``total / n`` over the samples of all processes (this process's alone outside torchrun)."""
    if D.is_distributed():
        sums = D.all_reduce_sum({"total": total, "n": n})
        total, n = sums["total"], int(sums["n"])
    return total / max(n, 1)


# torch 2.13 renamed the switch (``broadcast_buffers`` is deprecated); older releases know only it.
_DDP_PARAMETERS = inspect.signature(DistributedDataParallel).parameters
_NO_FORWARD_BUFFER_SYNC = ({"forward_sync_buffers": False} if "forward_sync_buffers" in _DDP_PARAMETERS
                           else {"broadcast_buffers": False})


class _TrainingLoss(torch.nn.Module):
    """Makes a model's ``training_loss`` its forward pass.

    DistributedDataParallel synchronises gradients only for computations that went through its
    own ``forward``; models are trained through ``training_loss`` (teacher forcing, auxiliary
    autoencoders), so that is what the wrapper must call.
    """

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.model.training_loss(batch)


def _wrap_ddp(model: torch.nn.Module, device: torch.device) -> DistributedDataParallel:
    """Wrap ``model``'s training loss in DDP over the parameters that require gradients now.

    ``static_graph``: within a training phase every step uses the same parameters, and a model
    may have parameters its training loss never touches (an inference-only path); a static graph
    lets DDP learn which once instead of searching the autograd graph every step.
    Buffers are not re-sent from rank 0 before every forward: the models' buffers are constants
    (masks, positional codes) built identically on every process, so that would only cost time.
    """
    return DistributedDataParallel(
        _TrainingLoss(model), device_ids=[device.index] if device.type == "cuda" else None,
        static_graph=True, **_NO_FORWARD_BUFFER_SYNC)


def _read_resume_state(path: Path | None, device: torch.device) -> dict[str, Any] | None:
    """The checkpoint to resume from, or None; under torchrun rank 0 reads it and sends it.

    Reading on rank 0 alone means the file need only be visible there (node-local scratch) and
    every process resumes from the same bytes even while rank 0 could be replacing the file.
    """
    if not D.is_distributed():
        if path is not None and path.exists():
            return load_checkpoint(path, map_location=device)
        return None
    payload: tuple[str, Any] = ("none", None)
    if D.is_main_process() and path is not None and path.exists():
        try:
            payload = ("state", load_checkpoint(path, map_location="cpu"))
        except DataError as exc:
            # Sent to the other ranks too: raising on rank 0 alone would leave them waiting.
            payload = ("error", (exc.message, exc.path))
    kind, value = D.broadcast_object(payload)
    if kind == "error":
        raise DataError(value[0], path=value[1])
    return value if kind == "state" else None


def _restore_rng(state: dict[str, Any], seed: int) -> None:
    """Restore this process's RNG streams from a checkpoint (exact for the same process count)."""
    saved_world = int(state.get("world_size", 1))
    if saved_world == D.world_size():
        _set_rng_state(state["rng_ranks"][D.rank()] if "rng_ranks" in state else state["rng"])
        return
    # Another number of processes shards the data differently, so the run cannot continue exactly;
    # fresh streams, distinct per rank and epoch, keep dropout masks from repeating earlier ones.
    LOG.warning("resuming a checkpoint of %d training process(es) with %d: training continues, "
                "but not exactly as an uninterrupted run would", saved_world, D.world_size())
    seed_everything(seed + D.rank() + 1_000_003 * (int(state["epoch"]) + 1))


def train(model: torch.nn.Module, train_set: Dataset, val_set: Dataset | None,
          config: TrainConfig, *, lr: float, checkpoint: str | os.PathLike | None = None,
          resume: bool = False, loss_log: str | os.PathLike | None = None,
          extra: dict[str, Any] | None = None,
          on_epoch_end: Callable[[int, dict[str, float]], None] | None = None) -> TrainResult:
    """Train ``model`` in place, reproducibly: the same data, model and ``config.seed`` give
    the same weights on one machine (:func:`deterministic_algorithms`; see ``_train``)."""
    with deterministic_algorithms():
        return _train(model, train_set, val_set, config, lr=lr, checkpoint=checkpoint,
                      resume=resume, loss_log=loss_log, extra=extra, on_epoch_end=on_epoch_end)


def _train(model: torch.nn.Module, train_set: Dataset, val_set: Dataset | None,
           config: TrainConfig, *, lr: float, checkpoint: str | os.PathLike | None = None,
           resume: bool = False, loss_log: str | os.PathLike | None = None,
           extra: dict[str, Any] | None = None,
           on_epoch_end: Callable[[int, dict[str, float]], None] | None = None) -> TrainResult:
    """Train ``model`` in place.

    Under ``torchrun`` (``WORLD_SIZE > 1``) every process calls this with the same arguments and
    identical initial weights; the process group is joined on the first call (see
    :mod:`~bids_eeg2fmri.training.distributed`), and every process returns the same weights.

    Parameters
    ----------
    model
        An :class:`~bids_eeg2fmri.models.base.EEG2fMRIModel` (``training_loss``, ``set_epoch``).
    train_set, val_set
        Datasets of normalised samples; without a validation set there is no early stopping.
    config
        Optimisation settings.
    lr
        Learning rate (``config.lr`` wins when set).
    checkpoint
        File written atomically after every epoch (by rank 0 only); required for ``resume``.
    resume
        Continue from ``checkpoint`` when it exists (a missing file starts afresh). Under torchrun
        rank 0 reads it and sends it to the others.
    loss_log
        TSV of per-epoch losses, rewritten atomically every epoch (by rank 0 only).
    extra
        Picklable metadata stored in every checkpoint (model name, normalisers, data spec...).
    on_epoch_end
        Called after each epoch's checkpoint with ``(epoch, row)``, on every process.

    Returns
    -------
    TrainResult
    """
    distributed = D.is_distributed()
    device = D.setup(resolve_device(config.device))
    dtype = _autocast_dtype(device) if config.amp else None
    # Rank 0 seeds as a single process does; the other ranks get their own dropout streams, as
    # different samples in one process would. Weights stay identical: they were built before this
    # call, and DDP sends rank 0's to every process when it wraps the model.
    seed_everything(config.seed + D.rank())
    model.to(device)
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.lr or lr,
                                  weight_decay=config.weight_decay)
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
    result = TrainResult(device=str(device))
    start_epoch, bad_epochs, best_state = 0, 0, None
    warmup = int(getattr(model, "warmup_epochs", 0))
    ckpt_path = Path(checkpoint) if checkpoint is not None else None
    state = _read_resume_state(ckpt_path, device) if resume else None
    if state is not None:
        if state.get("train_config", {}).get("seed") != config.seed:
            raise UsageError(f"{ckpt_path}: cannot resume with a different --random-seed")
        model.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"])
        _restore_rng(state, config.seed)
        start_epoch = state["epoch"] + 1
        bad_epochs = state["bad_epochs"]
        best_state = state["best_state"]
        result.history = list(state["history"])
        result.best_epoch, result.best_val = state["best_epoch"], state["best_val"]
        result.stopped_early = state["stopped_early"]
        result.resumed_from = state["epoch"]
        del state
    # Each process scores its own share of the validation samples; the sums are combined so all
    # processes see the same validation loss and stop at the same epoch.
    val_loader = (DataLoader(D.shard(val_set), batch_size=max(config.batch_size, 64), shuffle=False)
                  if val_set is not None and len(val_set) else None)
    show = sys.stderr.isatty() if config.progress is None else config.progress
    bar = tqdm(range(start_epoch, config.epochs), disable=not show or not D.is_main_process(),
               desc="epochs", leave=False)
    ddp: DistributedDataParallel | None = None
    trainable: tuple[bool, ...] = ()
    for epoch in bar:
        if result.stopped_early:
            break
        t0 = time.perf_counter()
        model.set_epoch(epoch)
        model.train()
        if distributed:
            # DDP synchronises the parameters that required gradients when it was built; a model
            # that changes phase (pretrain, then freeze) needs a new wrapper for its new set.
            now = tuple(p.requires_grad for p in model.parameters())
            if ddp is None or now != trainable:
                ddp = None
                gc.collect()  # drop the old reducer's gradient hooks before new ones are added
                ddp, trainable = _wrap_ddp(model, device), now
            ddp.train()
        loader = D.train_loader(train_set, config.batch_size, seed=config.seed * 100_003,
                                epoch=epoch, num_workers=config.num_workers)
        total, n = 0.0, 0
        for batch in loader:
            batch = _to(batch, device)
            optimiser.zero_grad(set_to_none=True)
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                loss = ddp(batch) if ddp is not None else model.training_loss(batch)
            if not torch.isfinite(loss.detach()):
                # Under torchrun the launcher stops the other processes when this one fails.
                raise DataError(f"training loss became {float(loss.detach())} at epoch {epoch + 1}; check the "
                                "inputs for extreme values or lower the learning rate")
            scaler.scale(loss).backward()
            if config.grad_clip > 0:
                scaler.unscale_(optimiser)
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            scaler.step(optimiser)
            scaler.update()
            total += float(loss.detach()) * batch["x"].shape[0]
            n += batch["x"].shape[0]
        train_loss = _mean_over_processes(total, n)
        val = (_mean_over_processes(*_val_sums(model, val_loader, device, dtype))
               if val_loader is not None else float("nan"))
        row = {"epoch": epoch + 1, "train_loss": train_loss, "val_loss": val,
               "lr": optimiser.param_groups[0]["lr"], "seconds": time.perf_counter() - t0}
        result.history.append(row)
        if epoch >= warmup and val_loader is not None:
            if val < result.best_val:
                result.best_val, result.best_epoch, bad_epochs = val, epoch + 1, 0
                best_state = copy.deepcopy(model.state_dict())
            else:
                bad_epochs += 1
                if config.patience and bad_epochs >= config.patience:
                    result.stopped_early = True
        bar.set_postfix(train=f"{row['train_loss']:.3f}", val=f"{val:.3f}")
        # Every process's RNG state goes into rank 0's checkpoint, so that a resumed run with the
        # same number of processes continues each process's dropout stream exactly.
        rng_ranks = D.all_gather_object(_rng_state()) if distributed else None
        if ckpt_path is not None and D.is_main_process():
            save_checkpoint(ckpt_path, {
                "epoch": epoch, "model": model.state_dict(), "optimizer": optimiser.state_dict(),
                "scaler": scaler.state_dict(), "rng": _rng_state(), "bad_epochs": bad_epochs,
                "best_state": best_state, "best_epoch": result.best_epoch,
                "best_val": result.best_val, "stopped_early": result.stopped_early,
                "history": result.history, "train_config": asdict(config),
                "world_size": D.world_size(), **({"rng_ranks": rng_ranks} if rng_ranks else {}),
                **(extra or {})})
        if loss_log is not None:
            write_loss_log(loss_log, result.history)
        if on_epoch_end is not None:
            on_epoch_end(epoch, row)
    ddp = None
    if best_state is not None:
        model.load_state_dict(best_state)
        if config.shrink:
            result.shrinkage = calibrate(model, val_loader, device, dtype)
    model.eval()
    return result


def write_loss_log(path: str | os.PathLike, history: list[dict[str, float]]) -> None:
    """Write the per-epoch losses as a TSV (``epoch train_loss val_loss lr seconds``).

    Under torchrun only rank 0 writes (every process holds the same history); the others return.
    """
    if not D.is_main_process():
        return
    lines = ["\t".join(LOSS_COLUMNS)]
    for row in history:
        lines.append("\t".join(f"{row[c]:.6g}" if c != "epoch" else str(int(row[c]))
                               for c in LOSS_COLUMNS))
    atomic_write_text(path, "\n".join(lines) + "\n")


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """``torch.save`` through an atomic temporary, so a kill never leaves half a checkpoint.

    Under torchrun only rank 0 writes and the other ranks return at once: their models are
    replicas of rank 0's, and one writer keeps shared output folders free of duplicate work.
    Code on another rank that reads the file back must first wait for rank 0
    (:func:`~bids_eeg2fmri.training.distributed.barrier`).
    """
    if not D.is_main_process():
        return
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`; unreadable files are a DataError."""
    try:
        # Restricted unpickler: tensors, containers and numpy arrays only, never code.
        with torch.serialization.safe_globals(checkpoint_safe_globals()):
            return torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise DataError("model checkpoint not found", path=path) from None
    except Exception as exc:  # torch raises a variety of pickling/zip errors for corrupt files
        raise DataError(f"cannot read model checkpoint: {checkpoint_error(exc)}", path=path) from None
