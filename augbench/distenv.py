"""Which process of a data-parallel run this is: torchrun's or submitit's variables, read without torch.

One process is rank 0 of 1. Below the trainer (`augbench.train.distributed` builds the process
group from it) and the sweep jobs (a job of several tasks keeps the books on rank 0 only).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from augbench.errors import ConfigError


@dataclass(frozen=True)
class DistEnv:
    """This process's place among the processes of one run (one process: rank 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        return self.world_size > 1


def _export_submitit() -> None:
    """Inside a submitit SLURM job of several tasks, the variables torchrun would have set."""
    env = os.environ
    if "WORLD_SIZE" in env or env.get("SUBMITIT_EXECUTOR") != "slurm" or int(env.get("SLURM_NTASKS", "1")) < 2:
        return
    from submitit.helpers import TorchDistributedEnvironment  # only inside a submitit job of several tasks

    TorchDistributedEnvironment().export(set_cuda_visible_devices=False)  # each process picks cuda:LOCAL_RANK


def launch_env(mode: str = "auto") -> DistEnv:
    """`run.distributed`: "auto" reads the launcher's variables, "off" ignores them (one process)."""
    if mode not in ("auto", "off"):
        raise ConfigError(f"run.distributed {mode!r}: expected auto or off")
    if mode == "off":
        return DistEnv()
    _export_submitit()
    env = os.environ
    try:
        world = int(env.get("WORLD_SIZE", "1"))
        rank = int(env.get("RANK", "0"))
        local = int(env.get("LOCAL_RANK", str(rank)))
    except ValueError:
        raise ConfigError("RANK, WORLD_SIZE and LOCAL_RANK must be whole numbers") from None
    if world > 1 and not 0 <= rank < world:
        raise ConfigError(f"RANK={rank} is outside WORLD_SIZE={world}")
    return DistEnv(rank, world, local) if world > 1 else DistEnv()


def is_follower(settings: dict[str, Any]) -> bool:
    """True in a process of a data-parallel run other than rank 0 (it writes nothing)."""
    return launch_env(settings.get("run.distributed", "auto")).rank > 0
