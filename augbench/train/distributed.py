"""Data parallelism for one run: several processes (GPUs), one global batch, one set of numbers.

Launch: torchrun sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT; a submitit/SLURM
job with several tasks (`tasks_per_node` = GPUs) gets them from
`submitit.helpers.TorchDistributedEnvironment`. With `run.distributed=auto` (the default) a
trainer started in such an environment joins the process group (NCCL on CUDA, gloo on the CPU).

What makes W processes compute what one process computes on the same global batch:
- data: every process draws the same seeded order; step i's global batch is
  order[i*B:(i+1)*B] and process r takes its r-th contiguous share of B/W rows;
- gradients: the classifier is wrapped in DistributedDataParallel (averaged gradients); the
  method's own parameters (InstaAug's phi, stepped by `method.make_optimizer()`'s optimizer)
  get their gradients averaged here after the backward pass, including "no gradient anywhere";
- BatchNorm: in training, statistics over the global batch (`GlobalBatchNorm`, collectives
  that autograd differentiates), so activations, running statistics and gradients are those of
  the one-process batch;
- method buffers (an EMA of the batch loss, entropy sums) are averaged after every step: the
  average of per-process EMAs is the EMA of the global batch's loss;
- step statistics are averaged for the records; checkpoint and stop decisions are agreed.
Randomness is the exception: each process draws its own augmentations (rank 0 with the seed of
a one-process run), so a method that samples gives a different (equally seeded) draw than one
process, and its results depend on the number of processes; deterministic methods do not.

Rank 0 alone evaluates, writes the run directory and checkpoints (with every rank's RNG state);
the others train with it, write nothing, and return the metrics it broadcasts.
"""

from __future__ import annotations

import atexit
from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

from augbench.distenv import DistEnv
from augbench.errors import ConfigError
from augbench.methods import AugmentationMethod
from augbench.rundir import RecordWriter

#: Rank 0 evaluates alone (a final test-time augmentation pass over ImageNet takes minutes)
#: while the other processes wait in a collective; a process that died is noticed after this.
TIMEOUT = timedelta(hours=1)
#: Tasks whose loss of an image depends on that image alone (a contrastive loss takes its
#: negatives from the batch, so a share of the batch is not a share of the loss).
PER_SAMPLE_TASKS = frozenset({"classification", "fixed-classifier"})


# ----------------------------------------------------------------------------- BatchNorm over the global batch
class _SumOverProcesses(torch.autograd.Function):
    """The sum of a tensor over processes; its gradient is the sum of the processes' gradients."""

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:
        out = x.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        out = grad.clone()
        dist.all_reduce(out)
        return out


def all_reduce(x: Tensor) -> Tensor:
    """Differentiable sum over processes."""
    return _SumOverProcesses.apply(x)


class _GlobalStats(nn.modules.batchnorm._BatchNorm):
    """Training-mode statistics over every process's share of the batch; otherwise plain BatchNorm.

    Two differentiable sums over processes per forward pass (sums, then centred squares: the
    two-pass variance of one process), so gradients flow across processes as in one batch. Works
    on every backend (torch's SyncBatchNorm refuses CPU tensors, hence gloo).
    """

    def forward(self, x: Tensor) -> Tensor:
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        self._check_input_dim(x)
        dims = [0, *range(2, x.dim())]
        shape = [1, -1] + [1] * (x.dim() - 2)
        xf = x.float()
        sums = all_reduce(torch.cat([xf.sum(dims), xf.new_full((1,), x.numel() // x.shape[1])]))
        n = sums[-1].detach()
        mean = sums[:-1] / n
        centred = xf - mean.view(shape)
        var = all_reduce(centred.square().sum(dims)) / n
        if self.track_running_stats and self.running_mean is not None and self.running_var is not None:
            factor = self.momentum
            if self.num_batches_tracked is not None:
                self.num_batches_tracked.add_(1)
                if factor is None:
                    factor = 1.0 / float(self.num_batches_tracked)
            factor = 0.0 if factor is None else factor
            with torch.no_grad():
                unbiased = var * (n / (n - 1).clamp_min(1))
                self.running_mean.copy_(factor * mean + (1 - factor) * self.running_mean)
                self.running_var.copy_(factor * unbiased + (1 - factor) * self.running_var)
        out = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.weight is not None and self.bias is not None:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out.to(x.dtype)


class GlobalBatchNorm1d(_GlobalStats, nn.BatchNorm1d):
    pass


class GlobalBatchNorm2d(_GlobalStats, nn.BatchNorm2d):
    pass


def convert_batchnorm(module: nn.Module) -> int:
    """Make every BatchNorm1d/2d of `module` a global-batch one in place (same parameters and
    state_dict keys); returns how many."""
    swap: dict[type[nn.Module], type[nn.Module]] = {nn.BatchNorm1d: GlobalBatchNorm1d,
                                                   nn.BatchNorm2d: GlobalBatchNorm2d}
    count = 0
    for m in module.modules():
        new = swap.get(type(m))
        if new is not None:
            m.__class__ = new
            count += 1
    return count


# ----------------------------------------------------------------------------- the trainer's side
def check_supported(task: str, method: AugmentationMethod, batch_size: int, n_train: int, world: int) -> None:
    """Refuse what data parallelism would silently change, in one line."""
    if task not in PER_SAMPLE_TASKS:
        raise ConfigError(f"task {task} cannot run on {world} processes: its loss couples the images of a batch; "
                          f"run it in one process (run.distributed=off)")
    if not method.data_parallel:
        raise ConfigError(f"method {method.name} keeps state that processes would each update differently (a "
                          f"policy stepped while augmenting, or state per training image); run it in one process "
                          f"(run.distributed=off)")
    own_updates = method.explores or type(method).attach_classifier is not AugmentationMethod.attach_classifier
    if own_updates:
        raise ConfigError(f"method {method.name} updates parameters outside the trainer's backward pass "
                          f"(exploration or an adversarial pass), which would drift apart on {world} processes; "
                          f"run it in one process (run.distributed=off)")
    if batch_size % world:
        raise ConfigError(f"train.batch_size {batch_size} is the global batch: it must divide among the {world} "
                          f"processes")
    if n_train < batch_size:
        raise ConfigError(f"{n_train} training images are fewer than one global batch ({batch_size})")


class Replicas:
    """The trainer's view of the other processes; with one process every call is the identity."""

    def __init__(self, env: DistEnv, device: torch.device) -> None:
        self.env, self.device = env, device
        self.rank, self.world = env.rank, env.world_size
        self.active, self.main = env.active, env.rank == 0
        if self.active and not dist.is_initialized():
            if device.type == "cuda":
                torch.cuda.set_device(device)
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=TIMEOUT)
            atexit.register(_destroy)
        if self.active and dist.get_world_size() != self.world:
            raise ConfigError(f"the process group has {dist.get_world_size()} processes, WORLD_SIZE says {self.world}")

    def train_seed_tag(self) -> str:
        """Rank 0 draws the augmentations of a one-process run; the others their own."""
        return "train" if self.rank == 0 else f"train/rank{self.rank}"

    def shard(self, idx: Tensor) -> Tensor:
        """This process's contiguous share of a global batch's rows."""
        if not self.active:
            return idx
        b = idx.shape[0] // self.world
        return idx[self.rank * b:(self.rank + 1) * b]

    def wrap(self, model: nn.Module) -> nn.Module:
        """The classifier's training forward: DistributedDataParallel when it has trainable parameters."""
        if not self.active or not any(p.requires_grad for p in model.parameters()):
            return model
        ids = [self.device.index] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=ids)

    def average_grads(self, params: Iterable[nn.Parameter]) -> None:
        """Mean gradient over processes; a parameter with no gradient anywhere keeps none."""
        params = list(params)
        if not self.active or not params:
            return
        present = torch.tensor([p.grad is not None for p in params], dtype=torch.int32, device=self.device)
        dist.all_reduce(present)
        live = [p for p, n in zip(params, present.tolist()) if n > 0]
        for p in live:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        self._average([p.grad for p in live if p.grad is not None])

    def average_buffers(self, module: nn.Module) -> None:
        """Mean of every persistent floating/integer buffer (float64/int64 sums: equal values stay exact)."""
        if not self.active:
            return
        keys = set(module.state_dict().keys())
        bufs = [b for name, b in module.named_buffers() if name in keys and b.dtype != torch.bool]
        if bufs:
            self._average(bufs)

    def _average(self, tensors: Sequence[Tensor]) -> None:
        for wide, group in ((torch.float64, [t for t in tensors if t.is_floating_point()]),
                            (torch.int64, [t for t in tensors if not t.is_floating_point()])):
            if not group:
                continue
            flat = _flatten_dense_tensors([t.to(wide) for t in group])
            dist.all_reduce(flat)
            flat = flat / self.world if wide == torch.float64 else flat.div(self.world, rounding_mode="floor")
            for t, mean in zip(group, _unflatten_dense_tensors(flat, group)):
                t.copy_(mean)

    def check_in_sync(self, *modules: nn.Module) -> None:
        """Raise if a process's parameters or buffers left rank 0's (state updated privately), by name."""
        if not self.active:
            return
        named = [(name, t) for m in modules for name, t in m.state_dict().items()
                 if isinstance(t, Tensor) and t.is_floating_point() and t.numel()]
        if not named:
            return
        local = torch.stack([t.detach().double().sum() for _, t in named]).to(self.device)
        every = [torch.empty_like(local) for _ in range(self.world)]
        dist.all_gather(every, local)
        ref = every[0]
        for rank, other in enumerate(every[1:], 1):
            bad = ((other - ref).abs() > 1e-4 * (ref.abs() + 1)).nonzero().flatten()
            if bad.numel():
                raise RuntimeError(f"process {rank}'s {named[int(bad[0])][0]} drifted from rank 0's (sums "
                                   f"{float(other[bad[0]]):.6g} vs {float(ref[bad[0]]):.6g}): the processes of this "
                                   f"run no longer compute one model")

    def agree(self, stats: dict[str, float], *flags: bool) -> tuple[dict[str, float], list[bool]]:
        """Step statistics averaged over processes, and each flag true if it is true anywhere."""
        if not self.active:
            return stats, list(flags)
        values = [*stats.values(), *map(float, flags), float(len(stats))]
        total = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(total)
        out = total.tolist()
        if out[-1] != len(stats) * self.world:
            raise RuntimeError("the processes of this run log different step statistics; they have diverged")
        k = len(stats)
        return ({key: v / self.world for key, v in zip(stats, out[:k])}, [v > 0 for v in out[k:k + len(flags)]])

    def any(self, flag: bool) -> bool:
        return self.agree({}, flag)[1][0]

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's `obj` on every process."""
        if not self.active:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, obj: Any) -> list[Any]:
        """Every process's `obj`, by rank."""
        if not self.active:
            return [obj]
        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, obj)
        return out


def _destroy() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


class SilentRecords(RecordWriter):
    """The records of a process other than rank 0: rank 0 writes them."""

    def write(self, *, step: int, epoch: int, split: str, metrics: dict[str, Any]) -> None:
        return None

    def truncate(self, offset: int) -> None:
        return None
