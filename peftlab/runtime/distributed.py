"""One run on many processes (`train.distributed: ddp | fsdp`), launched by `accelerate launch` or torchrun.

Why accelerate, and why thinly: accelerate reads whichever launcher started the processes
(torchrun, `accelerate launch`, MPI/SLURM variables) and initialises the process group with the
backend that fits (NCCL on GPUs, gloo on CPU): `PartialState`, nothing more. The wrapping is
torch's own API: `DistributedDataParallel`, and FSDP2's `fully_shard` with peft's wrap policy,
because accelerate's FSDP path is for GPUs only (on CPU its state keeps no FSDP plugin, so
that path could not even be tested on CPU) and wants to own the optimizer
(`prepare(model, optimizer)`), while the loop builds its optimizer itself after wrapping. Not
used either: accelerate's data loader, autocast and backward. The one training loop (train.py)
stays the loop of every single-process run and knows about ranks in three lines: each rank
takes its slice of every global batch (and exchanges gradients on a step's last micro-batch
only), and the step's loss, tokens and samples are reduced over the ranks.

Semantics: `train.batch_size` is the GLOBAL batch. The index batches are drawn exactly as for
one process (same seed, same order, same step budget); rank r of W collates rows
[r·b, (r+1)·b) of each, b = batch_size / W. DDP averages the ranks' gradients, so for a loss
that is a mean over examples W processes at b compute what one process computes at W·b (a
token-mean loss is averaged per rank, the approximation the loop already makes for
gradient accumulation).

A launched experiment: every rank runs the same plan, in the same order, in its own process
(no fork per run: a run's collectives belong to the launcher's processes). Each run's phases
run in lockstep on every rank, evaluation included: under FSDP every forward is collective, and
under DDP a rank-0-only evaluation would leave the other ranks blocked in the next step's
all-reduce, near the process group's timeout for a long evaluation, for no gain in wall time.
Only rank 0 takes the results lock, prints, and writes records, predictions, adapters and the
report; the record stores the world size and every rank's peak memory.

This module imports torch only inside the functions that need it: `launch_from_env` and
`check_launch` run before a run is planned.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from peftlab.errors import ConfigError

LAUNCH_HINT = (
    "accelerate launch --multi_gpu --num_processes 2 -m peftlab.run EXP.yaml "
    "(or torchrun --nproc-per-node 2 -m peftlab.run EXP.yaml)"
)


@dataclass(frozen=True)
class Launch:
    """Where this process sits in a launch, read off the launcher's environment variables."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def launched(self) -> bool:
        return self.world_size > 1

    @property
    def writes(self) -> bool:
        """Only rank 0 writes: records, predictions, adapters, the report, the lock, progress lines."""
        return self.rank == 0


def launch_from_env(environ: Mapping[str, str] | None = None) -> Launch:
    """RANK / WORLD_SIZE / LOCAL_RANK as torchrun and `accelerate launch` set them (1 process when unset)."""
    env = os.environ if environ is None else environ
    try:
        return Launch(
            rank=int(env.get("RANK", "0")),
            world_size=int(env.get("WORLD_SIZE", "1")),
            local_rank=int(env.get("LOCAL_RANK", "0")),
        )
    except ValueError:
        raise ConfigError(f"RANK, WORLD_SIZE and LOCAL_RANK must be integers; start with {LAUNCH_HINT}") from None


def check_launch(experiment: Any, origin: str, workers: int = 1) -> Launch:
    """The launch fits the experiment, or a one-line error before anything is written.

    `train.distributed` in one process is a forgotten launcher; a launch without it would make
    every rank run (and write) every run on its own.
    """
    launch, mode = launch_from_env(), experiment.train.distributed
    if mode is not None and not launch.launched:
        raise ConfigError(f"{origin}: train.distributed: {mode} needs several processes; launch with {LAUNCH_HINT}")
    if launch.launched and mode is None:
        raise ConfigError(
            f"{origin}: train.distributed: launched on {launch.world_size} processes but unset; "
            "set train.distributed=ddp (or fsdp) to make each run one job over all of them"
        )
    if launch.launched and experiment.train.batch_size % launch.world_size:
        raise ConfigError(
            f"{origin}: train.batch_size: {experiment.train.batch_size} is the global batch and must split evenly "
            f"over the {launch.world_size} processes"
        )
    if launch.launched and workers > 1:
        raise ConfigError(f"{origin}: --workers: not with train.distributed (every run already uses every process)")
    if launch.launched and not launch.writes:  # the other ranks' progress would repeat rank 0's
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - for the life of the process
    return launch


class Ranks:
    """The live process group of a distributed run: slicing, step reduction, wrapping, gathering.

    One per run; the process group itself (accelerate's state) is made once per process and kept.
    """

    def __init__(self, mode: str, launch: Launch, device: str) -> None:
        from accelerate import PartialState

        self.mode, self.launch, self.device = mode, launch, device
        PartialState(cpu=not device.startswith("cuda"), timeout=_timeout())  # the process group, once
        self.rank, self.world_size = launch.rank, launch.world_size

    @property
    def writes(self) -> bool:
        return self.rank == 0

    def describe(self, global_batch: int) -> dict[str, Any]:
        """The record's `distributed` block."""
        import torch.distributed as dist

        return {
            "mode": self.mode,
            "world_size": self.world_size,
            "backend": str(dist.get_backend()),
            "global_batch_size": global_batch,
            "per_rank_batch_size": global_batch // self.world_size,
        }

    # ---------------------------------------------------------------- the loop's lines

    def micro_batch(self, indices: Any, model: Any, last: bool) -> Any:
        """This rank's rows of a global micro-batch; its backward exchanges gradients only when `last`.

        Under gradient accumulation only the last micro-batch's backward all-reduces (DDP's
        `no_sync`, FSDP2's `set_requires_gradient_sync`), else every micro-batch would pay one.
        """
        model = getattr(model, "_orig_mod", model)  # under train.compile
        if self.mode == "ddp":
            model.require_backward_grad_sync = last  # what DDP.no_sync() toggles, without a with-block in the loop
        else:
            model.set_requires_gradient_sync(last)
        return self.shard(indices)

    def shard(self, indices: Any) -> Any:
        """This rank's contiguous slice of a global batch of example indices."""
        size = len(indices)
        if size % self.world_size:
            raise ValueError(f"a batch of {size} rows cannot be split evenly over {self.world_size} processes")
        per = size // self.world_size
        return indices[self.rank * per : (self.rank + 1) * per]

    def reduce_step(self, loss: float, tokens: int, samples: int) -> tuple[float, int, int]:
        """The step's loss averaged over the ranks, its tokens and samples summed: the global step's figures."""
        import torch
        import torch.distributed as dist

        figures = torch.tensor([loss, tokens, samples], dtype=torch.float64, device=self._collective_device())
        dist.all_reduce(figures)
        total_loss, total_tokens, total_samples = figures.tolist()
        return total_loss / self.world_size, int(total_tokens), int(total_samples)

    # ---------------------------------------------------------------- the run's lines

    def barrier(self) -> None:
        import torch.distributed as dist

        dist.barrier()

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's `obj`, in rank order, on every rank."""
        import torch.distributed as dist

        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def wrap(self, model: Any, full_model: bool) -> Any:
        """DDP (unused-parameter search for adapters) or FSDP2 (peft's wrap policy for adapters) around `model`."""
        if self.mode == "fsdp":
            return self._fsdp(model, full_model)
        from torch.nn.parallel import DistributedDataParallel

        cuda = self.device.startswith("cuda")
        # an adapter method may hold trainable tensors that a step's graph does not reach; a full
        # fine-tune uses every weight and skips DDP's walk of the graph
        return DistributedDataParallel(
            model, device_ids=[self.launch.local_rank] if cuda else None, find_unused_parameters=not full_model
        )

    def _fsdp(self, model: Any, full_model: bool) -> Any:
        """FSDP2 in place: one shard group per module the policy names (innermost first), then the whole model."""
        from torch.distributed.fsdp import fully_shard

        policy = _shard_policy(model, full_model)
        for module in reversed(list(model.modules())):  # reversed pre-order: children before their parents
            if module is not model and policy(module):
                fully_shard(module, reshard_after_forward=True)
        return fully_shard(model, reshard_after_forward=True)

    def unwrap(self, model: Any) -> Any:
        """The model itself: DDP's `.module`; an FSDP2 model is its own module (sharded in place)."""
        return getattr(model, "module", model) if self.mode == "ddp" else model

    def full_state_dict(self, model: Any) -> dict[str, Any] | None:
        """Under FSDP the whole (unsharded, CPU) state dict on rank 0, None elsewhere; collective. DDP: None."""
        if self.mode != "fsdp":
            return None
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        options = StateDictOptions(full_state_dict=True, cpu_offload=True)
        state = get_model_state_dict(model, options=options)
        return state if self.writes else None

    def _collective_device(self) -> str:
        return self.device if self.device.startswith("cuda") else "cpu"


def _shard_policy(model: Any, full_model: bool) -> Any:
    """Which modules get their own shard group.

    Adapters: peft's `fsdp_auto_wrap_policy` (the one its FSDP examples use): every leaf with a
    trainable weight (the adapters, a trained head) and every transformer layer, so no group
    mixes trained and frozen tensors. It is an FSDP1 policy; asked one module at a time
    (`recurse=False`) it answers for that module, as accelerate does when it applies such
    policies through FSDP2. A full fine-tune: the model's own transformer layers
    (`_no_split_modules`), as accelerate's `transformer_based_wrap`.
    """
    if not full_model:
        from peft.utils.other import fsdp_auto_wrap_policy

        fsdp1 = fsdp_auto_wrap_policy(model)
        return lambda module: bool(fsdp1(module=module, recurse=False, nonwrapped_numel=0))
    layers = set(getattr(model, "_no_split_modules", None) or ())
    return lambda module: type(module).__name__ in layers


def _timeout() -> Any:
    """Two hours: one rank may load, tokenise or save far longer than another before the next collective."""
    from datetime import timedelta

    return timedelta(hours=2)


def start(mode: str, device: str) -> Ranks:
    """The run's process group (made on the first run of the process), its device set to this rank's GPU."""
    launch = launch_from_env()
    if not launch.launched:
        raise ConfigError(f"train.distributed: {mode} needs several processes; launch with {LAUNCH_HINT}")
    return Ranks(mode, launch, rank_device(device, launch))


def rank_device(requested: str, launch: Launch) -> str:
    """A rank's device: its own GPU (`cuda:LOCAL_RANK`) when CUDA is used, else what was asked."""
    if requested.startswith("cuda"):
        import torch

        torch.cuda.set_device(launch.local_rank)
        return f"cuda:{launch.local_rank}"
    return requested
