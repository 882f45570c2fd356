"""Data-parallel training on torch.distributed, launched by torchrun.

The training loop stays one loop: every rank runs it, on the same epoch order
(a pure function of seed and epoch), and takes its own contiguous share of
each global batch. DistributedDataParallel averages the gradients, so a run on
N processes takes the same optimizer steps as one process with the same global
batch. This module holds what differs between the two cases:

* ``session()``: joins the process group when torchrun started us (env vars
  RANK, WORLD_SIZE, MASTER_ADDR, ...) with a bounded timeout, leaves it after;
* ``World``: who we are (rank, world size, local rank) and the calls the loop
  makes on it (``decide``, ``share``, ``reduce_sums``, ``wrap``, ...), each the
  identity in a single process;
* ``launch()``: ``cifarlab train --nproc N`` re-starts the command under
  torchrun's own launcher (torch.distributed.run) and turns a failed worker
  into one line that says how to resume.

Backends: gloo for CPU tensors, NCCL for CUDA tensors (one process group
serving both, so rank 0 can share a checkpoint before the device is known).
"""

from __future__ import annotations

import contextlib
import datetime
import os
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import torch

from cifarlab.errors import CifarlabError, RecipeError, TrainingError
from cifarlab.runtime import check_sync_bn

TIMEOUT_ENV = "CIFARLAB_DIST_TIMEOUT"
DEFAULT_TIMEOUT_S = 60.0  # a collective that waits longer than this fails instead of hanging
T = TypeVar("T")


@dataclass(frozen=True)
class World:
    """This process's place in the job; ``World()`` is the single-process case.

    Its methods are the loop's interface: the few points where a data-parallel run differs
    from one process. Outside a process group (``World()``) each is the identity, so one
    process runs the same code."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1
    active: bool = False  # a process group is initialised (even with size 1 under torchrun)

    @property
    def is_main(self) -> bool:
        """Rank 0: the only rank that prints, writes history and checkpoints."""
        return self.rank == 0

    @property
    def _collective(self) -> bool:
        """Whether there are other ranks to talk to (a group of one needs no collective)."""
        return self.active and self.size > 1

    def decide(self, fn: Callable[[], T]) -> T:
        """``fn()`` on rank 0 only, its result (or its CifarlabError) on every rank.

        Directory checks, the run lock, reading a checkpoint and resolving the recipe happen
        once, where the run directory is (rank 0's machine); the other ranks never wait on a
        rank that has failed. Errors re-raised on other ranks carry ``reported_by_rank0 =
        True`` so they print once.
        """
        if not self.active:
            return fn()
        import torch.distributed as dist

        box: list[Any] = [None]
        if self.is_main:
            try:
                box[0] = (fn(), None)
            except CifarlabError as exc:
                box[0] = (None, exc)
        dist.broadcast_object_list(box, src=0)
        value, error = box[0]
        if error is not None:
            if not self.is_main:
                error.reported_by_rank0 = True
            raise error
        return value

    def place(self, device: torch.device) -> torch.device:
        """The device this rank trains on: its own GPU under torchrun; the CPU as asked."""
        if not self.active:
            return device
        if device.type == "cuda":
            dev = torch.device("cuda", self.local_rank)
            torch.cuda.set_device(dev)
            return dev
        if device.type != "cpu":
            raise RecipeError(
                f"system.device: distributed runs support cpu (gloo) and cuda (NCCL), not "
                f"{device.type}; use --device cpu"
            )
        return device

    def check_data(self, fingerprint: str, source: str, batch: int, n_train: int) -> None:
        """Every rank holds the same data, and the global batch divides over the ranks."""
        self.check_same(fingerprint, f"data ({source})")
        self.check_batch(batch, n_train)

    def check_same(self, value: str, what: str) -> None:
        """Every rank must hold the same ``value`` (e.g. its data's fingerprint)."""
        if not self._collective:
            return
        import torch.distributed as dist

        values: list[Any] = [None] * self.size
        dist.all_gather_object(values, value)
        for rank, other in enumerate(values):
            if other != values[0]:
                raise TrainingError(
                    f"rank {rank}: its {what} differs from rank 0's; give every node the same "
                    f"data (--data-dir)"
                )

    def check_batch(self, batch: int, n_train: int) -> int:
        """The per-rank batch (global / world size); refuses what cannot be split evenly."""
        if self.size == 1:
            return batch
        if batch % self.size:
            raise RecipeError(
                f"train.batch_size: the global batch {batch} does not divide over {self.size} "
                f"processes; choose a multiple of {self.size}"
            )
        last = n_train % batch
        if last and last < self.size:
            raise RecipeError(
                f"train.batch_size: each epoch's last batch would hold {last} images, fewer than "
                f"the {self.size} processes; choose another batch size"
            )
        return batch // self.size

    def wrap(self, model: torch.nn.Module, device: torch.device, sync_bn: bool) -> torch.nn.Module:
        """DistributedDataParallel around ``model`` (SyncBatchNorm first when asked); the model
        itself in a single process. DDP starts every rank from rank 0's weights and buffers."""
        if not self.active:
            return model
        from torch.nn.parallel import DistributedDataParallel

        if sync_bn and self.size > 1:
            check_sync_bn(sync_bn, device)  # the loop refused it before any data was read
            # Converts in place below the top module; the top module itself is no BatchNorm here.
            torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        ids = [device.index] if device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    def share(self, idx: torch.Tensor) -> tuple[torch.Tensor, float]:
        """This rank's contiguous share of a global batch of indices, and the weight of its
        loss: DDP averages gradients over ranks, so weighting each rank by its share of the
        global batch (1.0 except in an uneven last batch) gives the global batch's mean."""
        lo, hi = rank_share(len(idx), self.rank, self.size)
        return idx[lo:hi], (hi - lo) * self.size / max(len(idx), 1)

    def reduce_running(
        self, loss_sum: torch.Tensor, correct: torch.Tensor, seen: int
    ) -> tuple[torch.Tensor, torch.Tensor, int]:
        """The running train statistics summed into rank 0; the other ranks get zeros.

        Rank 0 then holds the job's totals, which is what its history and checkpoint record.
        The sums stay tensors on the training device; ``seen`` is read back (a checkpoint point).
        """
        if not self.active:
            return loss_sum, correct, seen
        import torch.distributed as dist

        packed = torch.stack(
            [
                loss_sum.double(),
                correct.double(),
                torch.full_like(loss_sum, seen, dtype=torch.float64),
            ]
        )
        dist.all_reduce(packed)
        if not self.is_main:
            packed.zero_()
        return packed[0].clone(), packed[1].round().long(), int(packed[2])

    def first_nonfinite(self, bad_step: torch.Tensor, bad_loss: torch.Tensor) -> tuple[int, float]:
        """The first step (1-based, 0 = none) whose loss was not finite on any rank, and that
        loss; two host reads (checkpoint points only)."""
        step = int(bad_step)
        if not self._collective:
            return step, float(bad_loss)
        import torch.distributed as dist

        # MIN over the ranks that saw one: "none" (0) counts as later than every step.
        never = torch.iinfo(torch.int64).max
        mine = torch.tensor([step or never], dtype=torch.int64, device=bad_step.device)
        dist.all_reduce(mine, op=dist.ReduceOp.MIN)
        first = int(mine[0])
        if first == never:
            return 0, 0.0
        return first, float(bad_loss) if first == step else float("nan")

    def reduce_sums(self, sums: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Additive statistics (evaluate_sums) summed over all ranks; every rank gets the total."""
        if not self.active:
            return sums
        import torch.distributed as dist

        for value in sums.values():
            dist.all_reduce(value)
        return sums

    def sync_buffers(self, model: torch.nn.Module) -> None:
        """Copy rank 0's buffers (batch-norm running statistics) to every rank before
        evaluating, so every rank evaluates the model rank 0 checkpoints."""
        if not self._collective:
            return
        import torch.distributed as dist

        for buf in model.buffers():
            dist.broadcast(buf, src=0)


SINGLE = World()  # a plain, single process


def launched_by_torchrun() -> bool:
    """True inside a worker that torchrun (or torch.distributed.run) started."""
    return all(k in os.environ for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"))


def env_rank() -> int:
    """The global rank torchrun gave this process (0 outside torchrun)."""
    return int(os.environ.get("RANK", "0")) if launched_by_torchrun() else 0


def timeout_s() -> float:
    """Seconds a collective may wait for the other ranks ($CIFARLAB_DIST_TIMEOUT, default 60)."""
    raw = os.environ.get(TIMEOUT_ENV, "")
    if not raw:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise TrainingError(f"${TIMEOUT_ENV}: expected a positive number of seconds, got {raw!r}")
    return value


def backend_for_this_machine() -> str:
    """gloo for CPU tensors, plus NCCL for CUDA tensors where torch has both."""
    import torch.distributed as dist

    if torch.cuda.is_available() and dist.is_nccl_available():
        return "cpu:gloo,cuda:nccl"
    return "gloo"


@contextlib.contextmanager
def session() -> Iterator[World]:
    """The World of this process; joins (and afterwards leaves) torchrun's process group.

    Outside torchrun this yields ``World()`` and touches nothing. Inside a process group
    someone else initialised, it uses that group and leaves it alone at the end.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        yield _current_world()
        return
    if not launched_by_torchrun():
        yield World()
        return
    if not dist.is_available():
        raise TrainingError("this torch build has no torch.distributed; run without torchrun")
    timeout = datetime.timedelta(seconds=timeout_s())
    dist.init_process_group(backend=backend_for_this_machine(), timeout=timeout)
    try:
        yield _current_world()
    finally:
        with contextlib.suppress(Exception):  # leaving must never mask the real error
            dist.destroy_process_group()


def _current_world() -> World:
    import torch.distributed as dist

    size = dist.get_world_size()
    return World(
        rank=dist.get_rank(),
        size=size,
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
        local_size=int(os.environ.get("LOCAL_WORLD_SIZE", str(size))),
        active=True,
    )


# --------------------------------------------------------------------------- per-rank arithmetic


def rank_share(n: int, rank: int, size: int) -> tuple[int, int]:
    """[start, stop) of rank's contiguous share of n items: equal shares, the first
    ``n % size`` ranks one item more (torch.tensor_split's rule)."""
    base, extra = divmod(n, size)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


def threads_per_rank(local_size: int) -> int:
    """Intra-op threads for one of ``local_size`` processes sharing this machine's CPUs."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cpus = os.cpu_count() or 1
    return max(cpus // max(local_size, 1), 1)


# --------------------------------------------------------------------------- failures


def is_collective_failure(exc: BaseException) -> bool:
    """A failed collective: a peer died, the network broke, or the timeout passed."""
    import torch.distributed as dist

    if isinstance(exc, getattr(dist, "DistError", ())):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and any(
        s in text for s in ("gloo", "Gloo", "NCCL", "Connection closed", "Timed out", "timed out")
    )


def collective_failure(exc: BaseException, world: World, resume_dir: str) -> TrainingError:
    """The one-line error a rank raises when the others stopped answering."""
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    if "] " in first:  # drop gloo's source-file prefix
        first = first.split("] ", 1)[1]
    return TrainingError(
        f"rank {world.rank}: lost contact with the other processes ({first[:160]}); a process "
        f"died or the network failed. Resume from the last checkpoint: "
        f"cifarlab train --resume {resume_dir}"
    )


# --------------------------------------------------------------------------- launcher


def torchrun_args(
    nproc: int,
    child_args: list[str],
    *,
    nnodes: int = 1,
    node_rank: int = 0,
    rdzv_endpoint: str | None = None,
) -> list[str]:
    """torch.distributed.run arguments that start ``python -m cifarlab CHILD_ARGS`` N times.

    One node: ``--standalone`` (a free local port). Several: the static rendezvous at
    HOST:PORT, which node 0 hosts, with this node's ``--node-rank``.
    """
    if nproc < 1:
        raise TrainingError(f"--nproc: expected at least 1 process, got {nproc}")
    if nnodes < 1:
        raise TrainingError(f"--nnodes: expected at least 1 node, got {nnodes}")
    if not 0 <= node_rank < nnodes:
        raise TrainingError(f"--node-rank: expected 0 to {nnodes - 1}, got {node_rank}")
    args = ["--nproc-per-node", str(nproc), "--max-restarts", "0"]
    if nnodes == 1 and not rdzv_endpoint:
        args.append("--standalone")
    else:
        if not rdzv_endpoint or ":" not in rdzv_endpoint:
            raise TrainingError(
                "--rdzv-endpoint: a multi-node run needs HOST:PORT of node 0 (e.g. 10.0.0.1:29500)"
            )
        args += [
            "--nnodes",
            str(nnodes),
            "--node-rank",
            str(node_rank),
            "--rdzv-backend",
            "static",
            "--rdzv-endpoint",
            rdzv_endpoint,
        ]
    return [*args, "-m", "cifarlab", *child_args]


def launch(args: list[str], resume_hint: str) -> int:
    """Run torch.distributed.run with ``args`` in this process; 0 when every worker succeeded.

    A failed worker becomes one TrainingError line naming the rank and how it ended, and the
    command that resumes the run (``resume_hint``). A worker that reported a user error
    itself (exit status 2) is not reported twice.
    """
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args
    from torch.distributed.run import run as torchrun

    parsed = parse_args(args)
    os.environ.setdefault("OMP_NUM_THREADS", str(threads_per_rank(parsed_nproc(parsed))))
    try:
        torchrun(parsed)
    except ChildFailedError as exc:
        # The root cause: not a worker that printed its own cifarlab error (status 2), nor one
        # the agent stopped (SIGTERM) because another had failed.
        causes = [
            (rank, f)
            for rank, f in sorted(exc.failures.items())
            if f.exitcode not in (2, -signal.SIGTERM)
        ]
        if not causes:
            if any(f.exitcode == 2 for f in exc.failures.values()):
                return 2  # a worker already printed its one-line cifarlab error
            causes = [exc.get_first_failure()]
        rank, failure = causes[0]
        if failure.exitcode < 0:
            try:
                how = f"was killed by {signal.Signals(-failure.exitcode).name}"
            except ValueError:
                how = f"was killed by signal {-failure.exitcode}"
        else:
            how = f"exited with status {failure.exitcode}"
        raise TrainingError(
            f"distributed run stopped: rank {rank} (pid {failure.pid}) {how}; "
            f"resume from the last checkpoint with: {resume_hint}"
        ) from None
    return 0


def parsed_nproc(parsed: Any) -> int:
    try:
        return int(parsed.nproc_per_node)
    except (TypeError, ValueError):
        return 1
