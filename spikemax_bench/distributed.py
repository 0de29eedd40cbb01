"""Multi-process runs of spikemax-bench under ``torchrun``: who computes what, and how the processes agree.

``torchrun --standalone --nproc_per_node N -m spikemax_bench ...`` starts N processes (the *ranks*) and
tells each its place through the environment variables ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``
(:func:`launch_from_environment`). With ``WORLD_SIZE`` > 1 the bench:

* trains every network with ``DistributedDataParallel`` (gloo on CPU, nccl on CUDA, where each rank uses the GPU
  ``LOCAL_RANK``), each rank on its own part of the training split (``DistributedSampler``, seeded with the
  network's seed and reshuffled per epoch), so that the runs are reproducible;
* evaluates every split in :func:`shard`\\ s: rank ``r`` takes samples ``r, r + N, r + 2N, ...``, without
  padding or duplicates, and the streaming metrics sum their states over the ranks, so that the result is the
  one-process result;
* lets rank 0 alone decide which cells are done (:class:`SharedStore`: rank 0 reads, the others receive what it
  read), write files and show progress.

Without torchrun (or with ``WORLD_SIZE`` = 1) nothing here changes anything: :func:`world_size` is 1,
:func:`shard` returns the split itself and the sums over ranks return their arguments, so one process runs the
code it always ran.

Every collective call here must be made by every rank in the same order: the bench's control flow depends only
on values that are the same on every rank (the configuration, and what rank 0 read and broadcast).
"""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from torch import Tensor
from torch.utils.data import Dataset, Subset

__all__ = [
    "LAUNCH_VARIABLES",
    "Group",
    "Launch",
    "LaunchError",
    "RankError",
    "SharedStore",
    "broadcast",
    "close_process_group",
    "first_error",
    "gather_shards",
    "is_distributed",
    "launch_from_environment",
    "on_rank_zero",
    "process_group",
    "rank",
    "shard",
    "sum_over_ranks",
    "world_size",
]

LAUNCH_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
T = TypeVar("T")


class LaunchError(ValueError):
    """The torchrun environment variables are inconsistent; the message names the variable, expected and found."""


class RankError(RuntimeError):
    """What one rank raised, re-raised on every rank so that none waits for a collective call that never comes."""


@dataclass(frozen=True)
class Launch:
    """This process's place in the run: ``rank`` of ``world_size`` processes, ``local_rank`` on its machine."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        """True when more than one process computes the run."""
        return self.world_size > 1

    @property
    def writer(self) -> bool:
        """True for the one process that writes files and shows progress (rank 0)."""
        return self.rank == 0


def _variable(environ: Mapping[str, str], name: str, minimum: int) -> int:
    text = environ[name]
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < minimum:
        raise LaunchError(f"the environment variable {name} must be an integer >= {minimum}, got {text!r}")
    return value


def launch_from_environment(environ: Mapping[str, str] | None = None) -> Launch:
    """The :class:`Launch` that torchrun's ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` describe.

    Returns ``Launch()`` (one process) when none of them is set. Raises :class:`LaunchError` when only some are
    set, or when one is not an integer in its range (``0 <= RANK < WORLD_SIZE``, ``LOCAL_RANK >= 0``).
    """
    environ = os.environ if environ is None else environ
    present = [name for name in LAUNCH_VARIABLES if name in environ]
    if not present:
        return Launch()
    missing = [name for name in LAUNCH_VARIABLES if name not in environ]
    if missing:
        raise LaunchError(
            f"torchrun sets {', '.join(LAUNCH_VARIABLES)} together; the environment has {', '.join(present)} but "
            f"not {', '.join(missing)}. Start multi-process runs with torchrun, single runs without these variables"
        )
    world = _variable(environ, "WORLD_SIZE", 1)
    process_rank = _variable(environ, "RANK", 0)
    if process_rank >= world:
        raise LaunchError(f"the environment variable RANK must be < WORLD_SIZE = {world}, got {process_rank}")
    return Launch(rank=process_rank, world_size=world, local_rank=_variable(environ, "LOCAL_RANK", 0))


@dataclass
class Group:
    """The process group of a run, as :func:`process_group` yields it.

    ``leave_together``: wait for every process before leaving (the normal end). Set it to False when this
    process leaves early on its own (Ctrl-C), where the others may never reach that wait.
    """

    leave_together: bool = True


@contextlib.contextmanager
def process_group(launch: Launch, device: str) -> Iterator[Group]:
    """Join the run's process group for the duration of the block (nothing happens for one process); yields a
    :class:`Group`.

    The backend is nccl for ``device="cuda"`` (after selecting GPU ``LOCAL_RANK``) and gloo otherwise; the
    rendezvous is torchrun's (``MASTER_ADDR``, ``MASTER_PORT``).
    """
    group = Group()
    if not launch.distributed:
        yield group
        return
    import torch.distributed as dist

    if device == "cuda":
        torch.cuda.set_device(launch.local_rank)
    dist.init_process_group("nccl" if device == "cuda" else "gloo", rank=launch.rank, world_size=launch.world_size)
    completed = False
    try:
        yield group
        completed = True
    finally:
        close_process_group(leave_together=completed and group.leave_together)


def close_process_group(*, leave_together: bool = True) -> None:
    """Leave the default process group: wait for every process (with ``leave_together``), free what still holds
    the group, and destroy it.

    Freeing matters: ``DistributedDataParallel`` wrappers caught in reference cycles would otherwise be destroyed
    at interpreter exit, after the group, and their threads abort the process ("terminate called without an
    active exception"). Waiting matters too: a process that tears its connections down while another still uses
    them aborts.
    """
    import torch.distributed as dist

    try:
        if leave_together:
            dist.barrier()
    finally:
        gc.collect()
        dist.destroy_process_group()


# ------------------------------------------------------------------------------------- this process's place


def is_distributed() -> bool:
    """True when a process group of more than one process is running."""
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank (0 without a process group)."""
    import torch.distributed as dist

    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    """The number of processes (1 without a process group)."""
    import torch.distributed as dist

    return dist.get_world_size() if is_distributed() else 1


def shard(split: Dataset) -> Dataset:
    """This rank's part of an evaluation split: samples ``rank, rank + N, ...`` of N processes, no padding and no
    duplicates, so that sums over the ranks are sums over the split; ``split`` itself for one process."""
    processes = world_size()
    if processes == 1:
        return split
    return Subset(split, range(rank(), len(split), processes))  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------- collectives


def _device_for_collectives() -> torch.device:
    import torch.distributed as dist

    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def broadcast(value: T) -> T:
    """Rank 0's ``value`` on every rank (pickled); ``value`` itself for one process."""
    if not is_distributed():
        return value
    import torch.distributed as dist

    holder = [value if rank() == 0 else None]
    dist.broadcast_object_list(holder, src=0, device=_device_for_collectives())
    return holder[0]  # type: ignore[return-value]


def first_error(message: str | None) -> str | None:
    """The first message, in rank order, that any rank passes (None where a rank has no error); every rank gets
    it, prefixed with the rank that had it. ``message`` itself for one process."""
    if not is_distributed():
        return message
    import torch.distributed as dist

    messages: list[Any] = [None] * world_size()
    dist.all_gather_object(messages, message)
    for index, found in enumerate(messages):
        if found is not None:
            return f"rank {index}: {found}"
    return None


def on_rank_zero(function: Callable[[], T]) -> T:
    """``function()`` computed by rank 0 and broadcast to every rank; an exception on rank 0 is raised there as
    it is and on the other ranks as :class:`RankError` naming it. ``function()`` itself for one process."""
    if not is_distributed():
        return function()
    outcome: tuple[str, Any] = ("value", None)
    failure: Exception | None = None
    if rank() == 0:
        try:
            outcome = ("value", function())
        except Exception as error:
            failure = error
            outcome = ("error", f"{type(error).__name__}: {error}")
    outcome = broadcast(outcome)
    if failure is not None:
        raise failure
    if outcome[0] == "error":
        raise RankError(f"rank 0 failed: {outcome[1]}")
    return outcome[1]


def sum_over_ranks(values: Sequence[float]) -> list[float]:
    """Element-wise sums over the ranks, in float64 (``list(values)`` unchanged for one process)."""
    if not is_distributed():
        return list(values)
    import torch.distributed as dist

    total = torch.tensor(values, dtype=torch.float64, device=_device_for_collectives())
    dist.all_reduce(total)
    return total.tolist()


def gather_shards(local: Tensor, total: int, *, dim: int = 1) -> Tensor:
    """The whole split's tensor from every rank's :func:`shard` of it, in the split's order, on every rank.

    ``local`` holds this rank's samples along ``dim`` (samples ``rank, rank + N, ...``); the other dimensions
    must agree across ranks. ``total`` is the split's length. ``local`` itself for one process.
    """
    if not is_distributed():
        return local
    import torch.distributed as dist

    processes = world_size()
    device = _device_for_collectives()
    moved = local.movedim(dim, 0).contiguous().to(device)
    # all_gather needs equal shapes: pad every shard to the longest (shard r has ceil((total - r) / N) samples).
    longest = -(-total // processes)
    padded = torch.zeros((longest, *moved.shape[1:]), dtype=moved.dtype, device=device)
    padded[: moved.shape[0]] = moved
    pieces = [torch.empty_like(padded) for _ in range(processes)]
    dist.all_gather(pieces, padded)
    whole = torch.empty((total, *moved.shape[1:]), dtype=moved.dtype, device=device)
    for index, piece in enumerate(pieces):
        count = len(range(index, total, processes))
        whole[index::processes] = piece[:count]
    return whole.to(local.device).movedim(0, dim)


# ------------------------------------------------------------------------------------------------ the cells


class SharedStore:
    """The :class:`~spikemax_bench.store.CellStore` of a multi-process run, on every rank.

    Rank 0 holds the run's real store (``store``); the other ranks pass None. Every read (:meth:`get`,
    :meth:`has_weights`, :meth:`load_weights`) is made by rank 0 and broadcast, so that every rank sees the same
    finished cells, and an error while reading is raised on every rank; writes happen on rank 0 only. Every rank
    must call the reads in the same order (they are collective calls), which the bench's deterministic control
    flow does.
    """

    def __init__(self, store: Any | None) -> None:
        if (store is None) == (rank() == 0):
            raise ValueError(
                f"rank 0 must pass the run's store and the other ranks None; rank {rank()} passed "
                f"{type(store).__name__}"
            )
        self._store = store

    def get(self, key: str) -> dict[str, Any] | None:
        return on_rank_zero(lambda: self._store.get(key))

    def put(self, key: str, record: dict[str, Any]) -> None:
        if self._store is not None:
            self._store.put(key, record)

    def has_weights(self, key: str) -> bool:
        return on_rank_zero(lambda: self._store.has_weights(key))

    def save_weights(self, key: str, state: Mapping[str, Tensor]) -> None:
        if self._store is not None:
            self._store.save_weights(key, state)

    def load_weights(self, key: str) -> dict[str, Tensor]:
        # Pickled on CPU (the stores load with map_location="cpu"); the caller moves them to its device.
        state = on_rank_zero(lambda: self._store.load_weights(key))
        return {name: value.cpu() for name, value in state.items()}

    def drop_weights(self, key: str) -> None:
        if self._store is not None:
            self._store.drop_weights(key)
