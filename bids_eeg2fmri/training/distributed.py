"""Process-group facts and helpers for training under ``torchrun`` (a process per GPU, or gloo).

Outside ``torchrun`` every function answers as for a single process (world size 1, rank 0, no
collective communication), so the same code runs both ways and a single process behaves exactly
as it did before distributed training existed.

Under ``torchrun --nproc_per_node=N`` the trainer calls :func:`setup` itself: it joins the process
group (NCCL on CUDA, gloo on CPU) from the ``MASTER_ADDR``/``MASTER_PORT``/``RANK``/``WORLD_SIZE``
variables torchrun sets, binds each process to GPU ``LOCAL_RANK``, and leaves the group up for the
rest of the process (cross-validation trains many models in one group); it is torn down at exit.
"""

from __future__ import annotations

import atexit
import logging
import os
from collections.abc import Mapping
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, Subset
from torch.utils.data.distributed import DistributedSampler

LOG = logging.getLogger(__name__)


def world_size() -> int:
    """Number of training processes (``WORLD_SIZE`` set by torchrun, else 1)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    """This process's global rank (``RANK`` set by torchrun, else 0)."""
    return int(os.environ.get("RANK", "0"))


def local_rank() -> int:
    """This process's rank on its node (``LOCAL_RANK``), which picks its GPU."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main_process() -> bool:
    """True on the one process that writes files and prints summaries."""
    return rank() == 0


def is_distributed() -> bool:
    """True when more than one process trains together (``WORLD_SIZE > 1``)."""
    return world_size() > 1


def device_for(device: torch.device) -> torch.device:
    """The device this process uses: GPU ``LOCAL_RANK`` when ``device`` is CUDA, else ``device``.

    Parameters
    ----------
    device
        The resolved ``--device`` (``cpu`` or ``cuda``).

    Returns
    -------
    torch.device
        ``cuda:<LOCAL_RANK>`` under torchrun on CUDA (one process per GPU), ``device`` otherwise.
    """
    if device.type == "cuda" and is_distributed():
        return torch.device("cuda", local_rank())
    return device


def setup(device: torch.device) -> torch.device:
    """Join the process group when launched with ``WORLD_SIZE > 1``; return this process's device.

    Idempotent: a group that already exists (made by an earlier call or by the caller) is kept.
    The backend is NCCL for CUDA devices and gloo otherwise.

    Parameters
    ----------
    device
        The resolved ``--device``.

    Returns
    -------
    torch.device
        As :func:`device_for`.
    """
    device = device_for(device)
    if not is_distributed():
        return device
    if device.type == "cuda":
        # Before the group exists: NCCL (and the object collectives) use the current device.
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, init_method="env://",
                                world_size=world_size(), rank=rank())
        atexit.register(cleanup)
        LOG.info("joined process group: rank %d of %d, backend %s, device %s",
                 rank(), world_size(), backend, device)
    return device


def cleanup() -> None:
    """Leave the process group if this process is in one (safe to call more than once)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _active() -> bool:
    return is_distributed() and dist.is_available() and dist.is_initialized()


def _comm_device() -> torch.device:
    # NCCL only moves CUDA tensors; gloo moves CPU tensors.
    if _active() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def barrier() -> None:
    """Wait for every process (no-op in a single process), e.g. after rank 0 wrote a file."""
    if _active():
        dist.barrier()


def all_reduce_sum(values: Mapping[str, float]) -> dict[str, float]:
    """Sum each value over all processes, in float64; a single process gets its own values back.

    Parameters
    ----------
    values
        Name → number; every process must pass the same names.

    Returns
    -------
    dict
        Name → sum over processes (identical on every process).
    """
    if not _active():
        return {k: float(v) for k, v in values.items()}
    keys = list(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=_comm_device())
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return dict(zip(keys, t.cpu().tolist()))


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every process (picklable); a single process gets ``obj`` back."""
    if not _active():
        return obj
    box = [obj if rank() == src else None]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_gather_object(obj: Any) -> list[Any]:
    """Every process's ``obj``, in rank order; a single process gets ``[obj]``."""
    if not _active():
        return [obj]
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def shuffled_order(n: int, seed: int) -> list[int]:
    """The sample order a single process trains on: a shuffled DataLoader with a seeded generator.

    It is taken from such a DataLoader over ``range(n)`` rather than recomputed, because the
    DataLoader draws from its generator before shuffling (for worker seeds): reproducing it
    through the DataLoader itself stays exact whatever torch does inside.
    """
    if n == 0:
        return []
    gen = torch.Generator().manual_seed(seed)
    return next(iter(DataLoader(range(n), batch_size=n, shuffle=True, generator=gen))).tolist()


class ShardedShuffleSampler(DistributedSampler):
    """A :class:`DistributedSampler` whose epoch permutation is the single-process one.

    ``set_epoch(e)`` selects the permutation :func:`shuffled_order` draws with seed
    ``seed + e``; padding (``drop_last=False``) or truncation (``drop_last=True``) to a multiple
    of the number of processes and the strided split (rank ``r`` takes positions
    ``r, r + N, …``) are DistributedSampler's.
    """

    def __iter__(self):
        order = shuffled_order(len(self.dataset), self.seed + self.epoch)
        if self.drop_last:
            order = order[:self.total_size]
        else:
            pad = self.total_size - len(order)
            order += (order * (pad // max(len(order), 1) + 1))[:pad]
        return iter(order[self.rank:self.total_size:self.num_replicas])


def train_loader(dataset: Dataset, batch_size: int, *, seed: int, epoch: int,
                 num_workers: int = 0) -> DataLoader:
    """The shuffled training loader of one epoch, sharded over processes under torchrun.

    The sample order of epoch ``e`` is a permutation drawn from a generator seeded with
    ``seed + e`` and needs no saved state. A single process uses it whole, in batches of
    ``batch_size`` (the last partial batch dropped unless it is the only one). Under torchrun a
    :class:`ShardedShuffleSampler` (a DistributedSampler; seed ``seed``, ``set_epoch(e)``) takes
    the same permutation and gives rank ``r`` its elements ``r, r + N, r + 2N, …``; each
    process then takes ``batch_size`` of them per step, so the ``N`` processes' step-``k``
    batches together are exactly the single-process step-``k`` batch of ``N × batch_size``
    samples, and DDP's gradient average is that batch's gradient.

    Parameters
    ----------
    dataset
        Training samples.
    batch_size
        Samples per step and process (the effective batch is ``batch_size × world_size()``).
    seed
        Seed of the shuffling (the epoch is added).
    epoch
        0-based epoch.
    num_workers
        DataLoader worker processes.

    Returns
    -------
    DataLoader
        The same number of batches on every process (DDP needs equal step counts).
    """
    n = len(dataset)
    if not is_distributed():
        gen = torch.Generator().manual_seed(seed + epoch)
        return DataLoader(dataset, batch_size=batch_size, shuffle=True, generator=gen,
                          num_workers=num_workers, drop_last=n > batch_size)
    global_batch = batch_size * world_size()
    # With more samples than one global batch, the tail that would not fill a global batch is
    # dropped (as a single process drops its partial batch); otherwise the sampler pads by
    # repeating samples so that every process has at least one and all have the same count.
    drop = n > global_batch
    sampler = ShardedShuffleSampler(dataset, num_replicas=world_size(), rank=rank(), shuffle=True,
                                    seed=seed, drop_last=drop)
    sampler.set_epoch(epoch)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers,
                      drop_last=drop)


def shard(dataset: Dataset) -> Dataset:
    """This process's share of ``dataset`` for evaluation: samples ``rank, rank + N, …``.

    Unlike :class:`DistributedSampler` nothing is padded or dropped, so per-process sums combined
    with :func:`all_reduce_sum` count every sample exactly once. A single process gets ``dataset``.
    """
    if not is_distributed():
        return dataset
    return Subset(dataset, range(rank(), len(dataset), world_size()))
