"""One trainer for every torch model.

- Device ``auto``: CUDA when available, else CPU. Mixed precision (bf16 where the GPU supports it,
  else fp16 with a gradient scaler) only on CUDA; CPU runs in float32 so results are reproducible.
- AdamW, gradient-norm clipping, early stopping on a validation set (the best epoch's weights are
  restored at the end).
- A checkpoint after every epoch, written atomically, holding the model, optimiser, scaler, RNG
  states, early-stopping state and the loss history: ``resume=True`` continues from it and, on CPU,
  ends with exactly the weights an uninterrupted run would have. The batch order of epoch ``e``
  comes from a generator seeded with ``(seed, e)``, so it needs no saved state.
- A tqdm bar over epochs, silent when stderr is not a terminal; losses go to a TSV (one per fold).
"""

from __future__ import annotations

import copy
import os
import random
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from ..bids.derivatives import atomic_path, atomic_write_text
from ..errors import DataError, UsageError

LOSS_COLUMNS = ("epoch", "train_loss", "val_loss", "lr", "seconds")


@dataclass
class TrainConfig:
    """Optimisation settings (the CLI's ``--epochs``, ``--batch-size``, ``--lr``, ...).

    Attributes
    ----------
    epochs
        Maximum number of epochs.
    batch_size
        Samples per optimisation step.
    lr
        AdamW learning rate; None takes the model's registered default (the paper's).
    weight_decay
        AdamW decoupled weight decay.
    patience
        Epochs without validation improvement before stopping; 0 disables early stopping.
    grad_clip
        Maximum gradient L2 norm; 0 disables clipping.
    device
        ``auto``, ``cpu`` or ``cuda``.
    amp
        Autocast on CUDA (bf16 when supported, else fp16); ignored on CPU.
    seed
        Seeds weights, dropout and batch order.
    num_workers
        DataLoader worker processes (0 reads in the main process).
    progress
        Show a progress bar; None shows it only on a terminal.
    """

    epochs: int = 60
    batch_size: int = 32
    lr: float | None = None
    weight_decay: float = 1e-2
    patience: int = 10
    grad_clip: float = 1.0
    device: str = "auto"
    amp: bool = True
    seed: int = 0
    num_workers: int = 0
    progress: bool | None = None

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise UsageError(f"epochs and batch size must be >= 1, got {self.epochs}, "
                             f"{self.batch_size}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise UsageError(f"device must be auto, cpu or cuda, got {self.device!r}")


@dataclass
class TrainResult:
    """What training produced besides the weights (already loaded into the model)."""

    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = -1
    best_val: float = float("inf")
    stopped_early: bool = False
    resumed_from: int | None = None
    device: str = "cpu"


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


def _val_loss(model: torch.nn.Module, loader: DataLoader, device: torch.device,
              dtype: torch.dtype | None) -> float:
    model.eval()
    total, n = 0.0, 0
    with torch.no_grad(), torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
        for batch in loader:
            batch = _to(batch, device)
            err = (model(batch["x"]).float() - batch["y"]) ** 2
            total += float(err.mean(dim=1).sum())
            n += err.shape[0]
    return total / max(n, 1)


def train(model: torch.nn.Module, train_set: Dataset, val_set: Dataset | None,
          config: TrainConfig, *, lr: float, checkpoint: str | os.PathLike | None = None,
          resume: bool = False, loss_log: str | os.PathLike | None = None,
          extra: dict[str, Any] | None = None,
          on_epoch_end: Callable[[int, dict[str, float]], None] | None = None) -> TrainResult:
    """Train ``model`` in place.

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
        File written atomically after every epoch; required for ``resume``.
    resume
        Continue from ``checkpoint`` when it exists (a missing file starts afresh).
    loss_log
        TSV of per-epoch losses, rewritten atomically every epoch.
    extra
        Picklable metadata stored in every checkpoint (model name, normalisers, data spec...).
    on_epoch_end
        Called after each epoch's checkpoint with ``(epoch, row)``.

    Returns
    -------
    TrainResult
    """
    device = resolve_device(config.device)
    dtype = _autocast_dtype(device) if config.amp else None
    seed_everything(config.seed)
    model.to(device)
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.lr or lr,
                                  weight_decay=config.weight_decay)
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
    result = TrainResult(device=str(device))
    start_epoch, bad_epochs, best_state = 0, 0, None
    warmup = int(getattr(model, "warmup_epochs", 0))
    ckpt_path = Path(checkpoint) if checkpoint is not None else None
    if resume and ckpt_path is not None and ckpt_path.exists():
        state = load_checkpoint(ckpt_path, map_location=device)
        if state.get("train_config", {}).get("seed") != config.seed:
            raise UsageError(f"{ckpt_path}: cannot resume with a different --random-seed")
        model.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"])
        _set_rng_state(state["rng"])
        start_epoch = state["epoch"] + 1
        bad_epochs = state["bad_epochs"]
        best_state = state["best_state"]
        result.history = list(state["history"])
        result.best_epoch, result.best_val = state["best_epoch"], state["best_val"]
        result.stopped_early = state["stopped_early"]
        result.resumed_from = state["epoch"]
    val_loader = (DataLoader(val_set, batch_size=max(config.batch_size, 64), shuffle=False)
                  if val_set is not None and len(val_set) else None)
    show = sys.stderr.isatty() if config.progress is None else config.progress
    bar = tqdm(range(start_epoch, config.epochs), disable=not show, desc="epochs", leave=False)
    for epoch in bar:
        if result.stopped_early:
            break
        t0 = time.perf_counter()
        model.set_epoch(epoch)
        model.train()
        gen = torch.Generator().manual_seed(config.seed * 100_003 + epoch)
        loader = DataLoader(train_set, batch_size=config.batch_size, shuffle=True, generator=gen,
                            num_workers=config.num_workers, drop_last=len(train_set) > config.batch_size)
        total, n = 0.0, 0
        for batch in loader:
            batch = _to(batch, device)
            optimiser.zero_grad(set_to_none=True)
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                loss = model.training_loss(batch)
            if not torch.isfinite(loss.detach()):
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
        val = _val_loss(model, val_loader, device, dtype) if val_loader is not None else float("nan")
        row = {"epoch": epoch + 1, "train_loss": total / max(n, 1), "val_loss": val,
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
        if ckpt_path is not None:
            save_checkpoint(ckpt_path, {
                "epoch": epoch, "model": model.state_dict(), "optimizer": optimiser.state_dict(),
                "scaler": scaler.state_dict(), "rng": _rng_state(), "bad_epochs": bad_epochs,
                "best_state": best_state, "best_epoch": result.best_epoch,
                "best_val": result.best_val, "stopped_early": result.stopped_early,
                "history": result.history, "train_config": asdict(config), **(extra or {})})
        if loss_log is not None:
            write_loss_log(loss_log, result.history)
        if on_epoch_end is not None:
            on_epoch_end(epoch, row)
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return result


def write_loss_log(path: str | os.PathLike, history: list[dict[str, float]]) -> None:
    """Write the per-epoch losses as a TSV (``epoch train_loss val_loss lr seconds``)."""
    lines = ["\t".join(LOSS_COLUMNS)]
    for row in history:
        lines.append("\t".join(f"{row[c]:.6g}" if c != "epoch" else str(int(row[c]))
                               for c in LOSS_COLUMNS))
    atomic_write_text(path, "\n".join(lines) + "\n")


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """``torch.save`` through an atomic temporary, so a kill never leaves half a checkpoint."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`; unreadable files are a DataError."""
    try:
        # Checkpoints hold numpy RNG state and arrays next to tensors, which the weights-only
        # unpickler refuses; they are our own files.
        return torch.load(path, map_location=map_location, weights_only=False)
    except FileNotFoundError:
        raise DataError("model checkpoint not found", path=path) from None
    except Exception as exc:  # torch raises a variety of pickling/zip errors for corrupt files
        raise DataError(f"cannot read model checkpoint: {exc}", path=path) from None
