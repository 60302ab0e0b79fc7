"""One run on K processes: `torchrun --nproc_per_node=K -m artsy.run CONFIG` (docs/architecture.md
§5.8).

torchrun (or any launcher that sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT)
starts K copies of the same command. They join one process group (`init_from_env`: gloo for CPU
tensors, plus NCCL for CUDA tensors when there are GPUs; each process on the GPU of its
LOCAL_RANK) and then run the same code, with these differences:

- adapter training is data-parallel: every rank draws the single-process batch order from the same
  seeded generator and takes its contiguous slice of each global batch (`GlobalBatchSlices`); the
  learner scales each rank's loss so that DistributedDataParallel's averaged gradient is the
  single-process batch-mean gradient;
- feature passes and evaluations are sharded: rank r takes the r-th contiguous block of the
  images (`shard`), and the results are concatenated in rank order (`gather_rows`), so every rank
  holds exactly the arrays of a single process; whatever follows (prototypes, gate fitting,
  calibration, metrics) runs identically on every rank;
- rank 0 alone writes (run directory, config, fingerprint, metrics, synapse log, checkpoints) and
  prints; the others print nothing to stdout (`quiet`) and show no progress bars.

Failures: a block of local work that can fail on bad input runs inside `agree`, which ends with
one exchange among all ranks, so an error on any rank is raised on every rank (the failing rank's
own exception there, a `PeerError` with the same message elsewhere) and each exits with the same
code while rank 0 alone prints the one line. A rank that dies inside a collective (a crash, a kill)
is handled by torchrun, which stops the other workers when one exits non-zero; every collective
also has a timeout (`ARTSY_DIST_TIMEOUT_S`, default 1800 s), so no rank waits forever.

Nothing here changes a single process: with WORLD_SIZE unset or 1, `agree(fn)` is `fn()`,
`shard(d)` is `d`, `gather_rows` and `concat` concatenate, and no process group exists. torch is
imported inside the functions, so that the command line can read the rank before torch loads.
"""

from __future__ import annotations

import contextlib
import os
import random
from datetime import timedelta
from typing import Any, Callable, Optional, Sequence

import numpy as np

from .errors import BAD_INPUT, ArtsyError, RunError, one_line

TIMEOUT_ENV = "ARTSY_DIST_TIMEOUT_S"
DEFAULT_TIMEOUT_S = 1800.0  # waits longer than any step between two collectives (a checkpoint)


class PeerError(ArtsyError):
    """Bad input found on another rank: every rank ends with its message (exit code 2)."""

    def __init__(self, rank: int, kind: str, message: str) -> None:
        super().__init__(f"rank {rank}: {message}")
        self.origin_rank, self.kind = rank, kind
        self.agreed = True


class PeerFailure(RuntimeError):
    """Another rank failed with a bug (its traceback is in that rank's output)."""

    def __init__(self, rank: int, kind: str, message: str) -> None:
        super().__init__(f"rank {rank} failed with {kind}: {message}")
        self.origin_rank, self.kind = rank, kind
        self.agreed = True


# --------------------------------------------------------------------------------------------
# Who am I


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        raise RunError(f"environment variable {name}={os.environ[name]!r} is not an integer: "
                       "start several processes with torchrun") from None


def launched() -> bool:
    """Started as one of several processes (WORLD_SIZE > 1, as torchrun sets it)."""
    return _env_int("WORLD_SIZE", 1) > 1


def active() -> bool:
    """A process group of more than one process is up."""
    if not launched():
        return False
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    return _env_int("WORLD_SIZE", 1) if launched() else 1


def rank() -> int:
    """This process's rank (0 for a single process); read from the environment before the
    process group exists."""
    return _env_int("RANK", 0) if launched() else 0


def local_rank() -> int:
    return _env_int("LOCAL_RANK", 0) if launched() else 0


def is_writer() -> bool:
    """Rank 0: the one process that writes files and prints."""
    return rank() == 0


def timeout_s() -> float:
    text = os.environ.get(TIMEOUT_ENV)
    if text is None:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise RunError(f"environment variable {TIMEOUT_ENV}={text!r}: expected a number of "
                       "seconds > 0 (how long a process waits for the others)")
    return value


def launch_command() -> str:
    """How to start this run's processes again (for the --resume hint)."""
    if not launched():
        return "python"
    per_node = _env_int("LOCAL_WORLD_SIZE", world_size())
    if per_node == world_size():
        return f"torchrun --nproc_per_node={per_node}"
    return (f"torchrun --nnodes={world_size() // max(per_node, 1)} --nproc_per_node={per_node} "
            "<rendezvous options>")


# --------------------------------------------------------------------------------------------
# The process group


def init_from_env() -> None:
    """Join the launcher's process group when started as one of several processes (idempotent;
    nothing for a single process). Backend: gloo for CPU tensors, and NCCL for CUDA tensors
    when CUDA is available; each process binds the GPU of its LOCAL_RANK."""
    if not launched():
        return
    import torch
    import torch.distributed as dist

    if dist.is_initialized():
        return
    timeout = timedelta(seconds=timeout_s())
    backend = "gloo"
    if torch.cuda.is_available():
        backend = "cpu:gloo,cuda:nccl"  # object exchanges on the CPU, tensors where they are
        if local_rank() < torch.cuda.device_count():
            torch.cuda.set_device(local_rank())
    for name in ("MASTER_ADDR", "MASTER_PORT", "RANK"):
        if name not in os.environ:
            raise RunError(f"WORLD_SIZE is {world_size()} but {name} is not set: start the "
                           "processes with torchrun (torchrun --nproc_per_node=K -m artsy.run ...)")
    dist.init_process_group(backend, timeout=timeout)


def shutdown() -> None:
    """Leave the process group (after a run that ended normally on every rank)."""
    if not launched():
        return
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


# how gloo and NCCL word a collective that failed because another process is gone or stuck
_LOST = ("connection closed by peer", "connection reset by peer", "broken pipe", "timed out",
         "timeout", "socket closed", "nccl communicator was aborted")


def lost_peer(e: BaseException) -> bool:
    """Whether `e` is a collective that failed because another rank died or hung."""
    import torch.distributed as dist

    if isinstance(e, dist.DistError):
        return True
    return isinstance(e, RuntimeError) and any(w in str(e).lower() for w in _LOST)


def _all_gather_object(obj: Any) -> list:
    import torch.distributed as dist

    out: list = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


# --------------------------------------------------------------------------------------------
# Agreement: local work whose failure every rank learns about


def agree(fn: Callable[[], Any], run: bool = True, share: bool = False) -> Any:
    """Run `fn` on this rank when `run`, then exchange the outcome with every rank.

    If `fn` raised on any rank, every rank raises: the first failing rank (lowest) its own
    exception, the others a PeerError (bad input, exit code 2) or PeerFailure (a bug) with its
    message. Otherwise returns this rank's result, or rank 0's result on every rank when `share`
    (then rank 0 must run `fn`). `fn` must not use collectives. Single process: `fn()`.
    """
    if not active():
        return fn()
    result, error, failure = None, None, None
    if run:
        try:
            result = fn()
        except Exception as e:  # noqa: BLE001 - reported to every rank, then re-raised
            error = e
            failure = (type(e).__name__, one_line(e), isinstance(e, BAD_INPUT))
    outcomes = _all_gather_object((failure, result if share and is_writer() else None))
    failed = [(r, f) for r, (f, _) in enumerate(outcomes) if f is not None]
    if failed:
        first, (kind, message, bad) = failed[0]
        if first == rank() and error is not None:
            error.agreed = True  # every rank knows it: rank 0 alone reports it
            raise error
        raise (PeerError if bad else PeerFailure)(first, kind, message) from error
    return outcomes[0][1] if share else result


def writer_first(fn: Callable[[], Any]) -> Any:
    """`fn` on rank 0 first, then on the other ranks (each in `agree`): what rank 0 downloads,
    unpacks or caches (data, weights) the others then find in place. Returns this rank's result."""
    if not active():
        return fn()
    mine = agree(fn, run=is_writer())
    theirs = agree(fn, run=not is_writer())
    return mine if is_writer() else theirs


@contextlib.contextmanager
def quiet():
    """Ranks other than 0 print nothing to stdout in this block (errors go to stderr)."""
    if is_writer():
        yield
        return
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        yield


# --------------------------------------------------------------------------------------------
# Splitting the work


def bounds(n: int, parts: Optional[int] = None, index: Optional[int] = None) -> tuple[int, int]:
    """[lo, hi) of block `index` when n items are cut into `parts` contiguous blocks whose sizes
    differ by at most one (the first blocks are the smaller); defaults: this rank's block."""
    parts = world_size() if parts is None else parts
    index = rank() if index is None else index
    return n * index // parts, n * (index + 1) // parts


def shard(dataset):
    """This rank's contiguous block of `dataset` (the dataset itself for one process)."""
    if not active():
        return dataset
    from torch.utils.data import Subset

    lo, hi = bounds(len(dataset))
    return Subset(dataset, range(lo, hi))


class GlobalBatchSlices:
    """A batch sampler: the single-process batches, rank `rank`'s contiguous slice of each.

    The batches are those of `DataLoader(dataset, batch_size, shuffle=True,
    generator=generator)`: the same RandomSampler draws the same permutation when the DataLoader
    is also given `generator` (it draws its base seed from it first, as the single-process one
    does). Rank r takes `bounds(len(batch), K, r)` of each batch; a rank whose slice is empty (a
    last batch smaller than K) takes the batch's first image as a stand-in, which the learner
    weighs 0. `plan()` gives, per batch, (global size, images of this rank that count).
    """

    def __init__(self, dataset, batch_size: int, generator, rank_: Optional[int] = None,
                 world: Optional[int] = None) -> None:
        from torch.utils.data import BatchSampler, RandomSampler

        self.n, self.batch_size = len(dataset), batch_size
        self.rank = rank() if rank_ is None else rank_
        self.world = world_size() if world is None else world
        self.batches = BatchSampler(RandomSampler(dataset, generator=generator), batch_size,
                                    drop_last=False)

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        for batch in self.batches:
            lo, hi = bounds(len(batch), self.world, self.rank)
            yield batch[lo:hi] if hi > lo else batch[:1]

    def plan(self) -> list[tuple[int, int]]:
        sizes = [self.batch_size] * (self.n // self.batch_size)
        if self.n % self.batch_size:
            sizes.append(self.n % self.batch_size)
        out = []
        for g in sizes:
            lo, hi = bounds(g, self.world, self.rank)
            out.append((g, hi - lo))
        return out


def _seed_worker(rank_: int, worker_id: int) -> None:
    """DataLoader workers of rank `rank_`: their seeds (base seed + worker id, the same on every
    rank) mixed with the rank, so that ranks draw different augmentations."""
    import torch

    seeds = np.random.SeedSequence([torch.initial_seed(), rank_]).generate_state(2)
    torch.manual_seed(int(seeds[0]))
    random.seed(int(seeds[1]))


def worker_init_fn():
    """`worker_init_fn` for this rank's training DataLoader (None for one process)."""
    import functools

    return functools.partial(_seed_worker, rank()) if active() else None


def reseed_rank(seed: int) -> None:
    """Seed this rank's torch generators from (seed, rank, K): after the seeded initialisation
    that every rank shares, augmentation and dropout differ between ranks (no-op for one
    process)."""
    if not active():
        return
    import torch

    torch.manual_seed(int(np.random.SeedSequence([seed, rank(), world_size()])
                          .generate_state(1)[0]))


def data_parallel(module, device):
    """`module` under DistributedDataParallel: gradients averaged over the ranks in backward."""
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    # the frozen backbone's buffers never change: no broadcast before every forward pass
    return DistributedDataParallel(module, device_ids=ids, forward_sync_buffers=False)


# --------------------------------------------------------------------------------------------
# Gathering results


def gather_rows(local, device=None):
    """Concatenate every rank's rows (dim 0) in rank order; every rank gets the whole tensor, on
    the CPU. `local` is this rank's tensor, or None for a rank that had no rows. Exchanged on
    `device` (a CUDA device: NCCL; the CPU: gloo)."""
    import torch
    import torch.distributed as dist

    meta = None if local is None else (len(local), tuple(local.shape[1:]), str(local.dtype))
    metas = _all_gather_object(meta)
    known = [m for m in metas if m is not None]
    if not known:
        raise RuntimeError("gather_rows: no rank has rows")
    _, tail, dtype_name = known[0]
    dtype = getattr(torch, dtype_name.removeprefix("torch."))
    wire = torch.uint8 if dtype == torch.bool else dtype
    rows = [0 if m is None else m[0] for m in metas]
    device = torch.device("cpu") if device is None else torch.device(device)
    buffer = torch.zeros((max(rows), *tail), dtype=wire, device=device)
    if local is not None and len(local):
        buffer[: len(local)] = local.to(device=device, dtype=wire)
    parts = [torch.empty_like(buffer) for _ in rows]
    dist.all_gather(parts, buffer)
    return torch.cat([p[:k] for p, k in zip(parts, rows)]).to("cpu", dtype)


def concat(parts: Sequence, device=None):
    """`torch.cat(parts)` for one process; for several, every rank's concatenation in rank order
    (a rank may have no parts)."""
    import torch

    if not active():
        return torch.cat(list(parts))
    return gather_rows(torch.cat(list(parts)) if len(parts) else None, device)


def concat_numpy(parts: Sequence[np.ndarray], device=None) -> np.ndarray:
    """`np.concatenate(parts)` for one process; for several, as `concat`."""
    if not active():
        return np.concatenate(parts)
    import torch

    local = torch.from_numpy(np.concatenate(parts)) if len(parts) else None
    return gather_rows(local, device).numpy()


def all_sum(value: int) -> int:
    """The sum over the ranks of an integer (the value itself for one process)."""
    if not active():
        return value
    return sum(_all_gather_object(value))
