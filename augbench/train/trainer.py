"""The one trainer every method and task goes through.

Per step: a batch of uint8 images already on the device -> [0, 1] floats -> (benchmark's base
flips) -> `method.sample` -> one forward pass -> task's per-sample losses ->
`method.objective` -> one backward -> step every optimizer. Validation (a split carved from the
training data by the seed) drives every decision: best epoch, learning-rate plateau and the
method's own schedules; the test split is touched once, for the final report.

Resumes are exact: a checkpoint holds model, optimizers, schedulers, method state, RNG states,
the position in the epoch's data order and the byte offset of the records file.

The batch comes from the split in memory or, for a streamed split (`augbench.datasets.stream`),
from DataLoader workers decoding its files in the same order; under torchrun or a multi-task
submitit job each process takes its share of the global batch (`augbench.train.distributed`).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from augbench.atomic import atomic_torch_save
from augbench.benchmarks import Benchmark
from augbench.datasets.base import Dataset, Split
from augbench.datasets.stream import FileSplit
from augbench.device import process_device, resolve_device
from augbench.distenv import launch_env
from augbench.errors import TrainingDiverged
from augbench.log import logger, showing_progress
from augbench.methods import AugmentationMethod, MethodContext, StepContext, Views, create_method
from augbench.progress import RunPlan, RunProgress
from augbench.rundir import CHECKPOINT, CHECKPOINT_PREVIOUS, FINAL_WEIGHTS, INSPECT, RECORDS, RecordWriter, read_records
from augbench.seeds import run_generator, run_seed
from augbench.stop import STOP
from augbench.tasks import Task, get_task
from augbench.tasks.evaluate import model_features, to_float, views_evaluated
from augbench.train.checkpoint import load_latest, remove_stale_temporaries, rng_state, save_checkpoint, set_rng_state
from augbench.train.diagnosis import diagnose, divergence, explain
from augbench.train.distributed import (
    Replicas,
    SilentRecords,
    check_supported,
    convert_batchnorm,
)
from augbench.train.tensorboard import TensorBoardRecords
from augbench.transforms.geometry import hflip


def split_train_val(train: Split, fraction: float, seed: int) -> tuple[Split, Split | None]:
    """Validation rows drawn by the run seed alone: every method sees the same split."""
    n_val = int(round(len(train) * fraction))
    if n_val == 0:
        return train, None
    perm = torch.randperm(len(train), generator=run_generator(seed, "split"))
    return train.subset(perm[n_val:]), train.subset(perm[:n_val])


def _scalars(logs: dict[str, Any]) -> dict[str, float]:
    """The one-element tensors and numbers of `logs` as floats, the tensors read back in one transfer
    (one device sync per step, not one per statistic)."""
    tensors = {k: v for k, v in logs.items() if isinstance(v, torch.Tensor) and v.numel() == 1}
    values: dict[str, float] = {}
    if tensors:
        device = next(iter(tensors.values())).device
        dtype = torch.float32 if device.type == "mps" else torch.float64  # MPS has no float64
        stacked = torch.stack([v.detach().reshape(()).to(device, dtype) for v in tensors.values()])
        values = dict(zip(tensors, stacked.tolist()))
    out = {}
    for k, v in logs.items():
        if k in tensors:
            out[k] = float(values[k])
        elif isinstance(v, (int, float)) and not isinstance(v, torch.Tensor):
            out[k] = float(v)
    return out


class Trainer:
    """Trains one (benchmark, method, hyperparameters, seed) run inside its run directory."""

    def __init__(self, bench: Benchmark, method_name: str, hparams: dict[str, Any], seed: int,
                 run_dir: Path, header: dict[str, Any], dataset: Dataset | None = None, task: str = "") -> None:
        self.bench, self.s, self.seed, self.run_dir = bench, bench.s, seed, Path(run_dir)
        env = launch_env(self.s["run.distributed"])  # torchrun's or submitit's processes, or one
        self.device = resolve_device(process_device(self.s["run.device"], env.world_size, env.local_rank))
        self.replicas = Replicas(env, self.device)  # with one process every call is the identity
        self.records = (RecordWriter if self.replicas.main else SilentRecords)(self.run_dir, header)
        if self.replicas.main and self.s["run.tensorboard"]:  # the same scalars, live in TensorBoard
            self.records = TensorBoardRecords(self.run_dir, header)
        dataset = dataset if dataset is not None else bench.load()
        self.dataset = dataset
        train, val = split_train_val(dataset.train, self.s["train.val_fraction"], seed)
        self.train_split = train.to(self.device)
        self.val_split = val.to(self.device) if val is not None else None
        self.test_split = dataset.test
        self.task: Task = get_task(task or bench.task)(bench, dataset)
        bs = self.s["train.batch_size"]
        n = len(self.train_split)
        self.drop_last = n >= bs
        self.steps_per_epoch = n // bs if self.drop_last else 1
        self.epochs = self.s["train.epochs"]
        # steps into an epoch after which a mid-epoch validation check runs (`train.val_checks`)
        steps, k = self.steps_per_epoch, min(self.s["train.val_checks"], self.steps_per_epoch)
        self._check_steps = frozenset(round(steps * i / k) for i in range(1, k)) - {0, steps}

        torch.manual_seed(run_seed(seed, "model"))
        self.model: nn.Module = self.task.build_model().to(self.device)
        if self.s["run.channels_last"]:
            self.model = self.model.to(memory_format=torch.channels_last)
        if self.replicas.active:
            convert_batchnorm(self.model)  # statistics of the global batch, as in one process
        # the compiled (or DDP) module shares parameters with self.model, whose state_dict keys stay plain
        train_forward = self.replicas.wrap(self.model)
        self.forward = torch.compile(train_forward) if self.s["run.compile"] else train_forward
        self.amp_dtype = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}[self.s["train.amp"]]
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)
        torch.manual_seed(run_seed(seed, "method"))
        mctx = MethodContext(num_classes=dataset.num_classes, image_shape=dataset.image_shape,
                             families=frozenset({bench.family}), steps_per_epoch=self.steps_per_epoch,
                             feature_dim=getattr(self.model, "feature_dim", None), epochs=self.epochs,
                             train_size=n)
        self.method: AugmentationMethod = create_method(method_name, mctx, **hparams).to(self.device)
        self.method.attach_classifier(self.model)  # a no-op unless the method is defined through it
        if self.replicas.active:
            check_supported(self.task.name, self.method, bs, n, self.replicas.world)
            convert_batchnorm(self.method)
        torch.manual_seed(run_seed(seed, self.replicas.train_seed_tag()))

        params = [p for p in self.model.parameters() if p.requires_grad]
        self.model_opt = self._model_optimizer(params) if params else None
        self.method_opt = self.method.make_optimizer()
        self.scheduler = self._scheduler()
        self.explore_gen = run_generator(seed, "explore")
        self.epoch = 0
        self.step_in_epoch = 0
        self.global_step = 0
        self.best: dict[str, Any] = {"score": -math.inf, "epoch": -1, "model": None, "method": None}
        self.first_loss: float | None = None  # the first step's task loss: where `diverged` measures from
        self._last_ckpt_time = time.monotonic()
        self._elapsed_before, self._started = 0.0, time.monotonic()  # wall time of earlier attempts; this one's start
        # silent until `fit` starts the run's own (epochs timed outside `fit`, as `augbench bench` does, show nothing)
        self.progress = self._start_progress(show=False)

    # ------------------------------------------------------------------ setup helpers
    def _model_optimizer(self, params: list[nn.Parameter]) -> torch.optim.Optimizer:
        s = self.s
        if s["train.optimizer"] == "adam":
            return torch.optim.Adam(params, lr=s["train.lr"], weight_decay=s["train.weight_decay"])
        return torch.optim.SGD(params, lr=s["train.lr"], momentum=s["train.momentum"],
                               weight_decay=s["train.weight_decay"], nesterov=s["train.nesterov"])

    def _scheduler(self) -> Any:
        if self.model_opt is None or self.s["train.scheduler"] == "none":
            return None
        if self.s["train.scheduler"] == "cosine":
            return torch.optim.lr_scheduler.CosineAnnealingLR(self.model_opt, T_max=self.epochs)
        if self.s["train.scheduler"] == "multistep":
            return torch.optim.lr_scheduler.MultiStepLR(self.model_opt, milestones=self.s["train.milestones"],
                                                        gamma=self.s["train.gamma"])
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            self.model_opt, mode="max", factor=self.s["train.plateau_factor"],
            patience=self.s["train.plateau_patience"])

    # ------------------------------------------------------------------ checkpoints
    def _state(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch, "step_in_epoch": self.step_in_epoch, "global_step": self.global_step,
            "model": self.model.state_dict(), "method": self.method.state_dict(),
            "model_opt": self.model_opt.state_dict() if self.model_opt else None,
            "method_opt": self.method_opt.state_dict() if self.method_opt else None,
            "scheduler": self.scheduler.state_dict() if self.scheduler else None,
            "scaler": self.scaler.state_dict(),
            "rng": rng_state(), "explore_rng": self.explore_gen.get_state(),
            "records_offset": self.records.offset(), "best": self.best, "elapsed": self.elapsed(),
            "run_id": self.records.header.get("run_id"), "first_loss": self.first_loss,
        }

    def save(self) -> None:
        rngs = self.replicas.gather(rng_state())  # every process's draws continue exactly after a resume
        if self.replicas.main:
            state = self._state()
            if self.replicas.active:
                state.update(world_size=self.replicas.world, rng_ranks=rngs)
            self.records.sync()  # durable before the checkpoint that points at them (a power loss tears neither)
            save_checkpoint(self.run_dir / CHECKPOINT, state, previous=self.run_dir / CHECKPOINT_PREVIOUS)
        self._last_ckpt_time = time.monotonic()

    def try_resume(self) -> bool:
        """Load the last checkpoint if there is one; rewind the records to it."""
        if self.replicas.main:
            remove_stale_temporaries(self.run_dir)
        ck = load_latest([self.run_dir / CHECKPOINT, self.run_dir / CHECKPOINT_PREVIOUS],
                         warn=logger.warning if self.replicas.main else lambda _: None, usable=self._records_cover)
        if ck is None:
            self.records.truncate(0)  # records of an attempt that left no readable checkpoint are replayed
            return False
        self.load_state(ck)
        self._elapsed_before = float(ck.get("elapsed", 0.0))
        self.records.truncate(ck["records_offset"])
        return True

    def _records_cover(self, ck: dict[str, Any]) -> str | None:
        """Why the records cannot resume from `ck` (they end before its position: torn or lost), or None."""
        offset, size = int(ck["records_offset"]), self.records.offset()
        if self.records.covers(offset):
            return None
        if size < offset:
            return f"{RECORDS} ends at byte {size}, before its position {offset} (records were torn or lost)"
        return f"{RECORDS} has no record boundary at its position {offset}"

    def load_state(self, ck: dict[str, Any]) -> None:
        """Put the training state of `ck` (`_state`'s dict) back: weights, optimizers, RNGs, counters."""
        self.model.load_state_dict(ck["model"])
        self.method.load_state_dict(ck["method"])
        if self.model_opt is not None:
            self.model_opt.load_state_dict(ck["model_opt"])
        if self.method_opt is not None:
            self.method_opt.load_state_dict(ck["method_opt"])
        if self.scheduler is not None:
            self.scheduler.load_state_dict(ck["scheduler"])
        self.scaler.load_state_dict(ck["scaler"])
        set_rng_state(self._own_rng(ck))
        self.explore_gen.set_state(ck["explore_rng"])
        self.epoch, self.step_in_epoch, self.global_step = ck["epoch"], ck["step_in_epoch"], ck["global_step"]
        self.best = ck["best"]
        self.first_loss = ck.get("first_loss")  # absent from checkpoints written before the diagnosis read it

    def _own_rng(self, ck: dict[str, Any]) -> dict[str, Any]:
        """This process's RNG state in a checkpoint (rank 0's is `rng`, the one-process field)."""
        ranks, r = ck.get("rng_ranks"), self.replicas.rank
        if not self.replicas.active or (ranks is not None and len(ranks) == self.replicas.world):
            return ck["rng"] if not self.replicas.active else ranks[r]  # type: ignore[index]
        if self.replicas.main:
            logger.warning(f"the checkpoint was written by {len(ranks or [0])} process(es), this run has "
                  f"{self.replicas.world}: the other processes' augmentation draws restart from their seeds")
        return ck["rng"] if r == 0 else rng_state()

    def _checkpoint_due(self) -> bool:
        every = self.s["run.checkpoint_every_steps"]
        if every and self.global_step % every == 0:
            return True
        minutes = self.s["run.checkpoint_minutes"]
        return minutes > 0 and time.monotonic() - self._last_ckpt_time > minutes * 60

    # ------------------------------------------------------------------ training
    def _order(self, epoch: int) -> torch.Tensor:
        gen = run_generator(self.seed, f"order/{epoch}")
        return torch.randperm(len(self.train_split), generator=gen).to(self.device)

    def _batches(self, order: torch.Tensor) -> Generator[tuple[torch.Tensor, torch.Tensor | None], None, None]:
        """This process's rows of each remaining step of the epoch, with their uint8 images on the device
        when the split is streamed from files (None: `_step` indexes the in-memory split)."""
        bs = self.s["train.batch_size"]
        rows = [self.replicas.shard(order[i * bs:(i + 1) * bs] if self.drop_last else order)
                for i in range(self.step_in_epoch, self.steps_per_epoch)]
        if not isinstance(self.train_split, FileSplit):
            yield from ((r, None) for r in rows)
            return
        images = self.train_split.files.batches([r.cpu() for r in rows], pin_memory=self.device.type == "cuda")
        for r, x in zip(rows, images):
            yield r, x.to(self.device, non_blocking=True)

    def _step(self, idx: torch.Tensor, x_u8: torch.Tensor | None = None) -> dict[str, float]:
        x = to_float(self.train_split.x[idx] if x_u8 is None else x_u8)
        y = self.train_split.y[idx]
        if self.s["train.hflip"]:
            x = hflip(x, torch.rand(x.shape[0], device=x.device) < 0.5)
        ctx = StepContext(y=y, features=model_features(self.model), training=True, epoch=self.epoch,
                          step=self.global_step, lr=self.classifier_lr(), index=idx)
        n_views, copies = self.task.n_views, self.method.train_copies()
        views = self.method.sample(x, ctx, n_views * copies)
        inputs = views.x.contiguous(memory_format=torch.channels_last) if self.s["run.channels_last"] else views.x
        with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32,
                            enabled=self.amp_dtype is not None):
            out = self.forward(inputs)
            if copies > 1:  # the draws of each view give one prediction (FlowInv: the mean logit)
                out = self.method.combine_train_copies(out.view(copies, -1, *out.shape[1:]))
            per_sample = self.task.per_sample_loss(out, y, n_views, self.method.classifier_label_smoothing()).float()
        if views.log_prob is not None:  # what each view's transformation is credited with (REINFORCE)
            views.credit = self.task.view_credit(out.detach(), per_sample.detach(), n_views)
        views.outputs = out
        loss, logs = self.method.objective(per_sample, views)
        if loss.requires_grad:  # False when nothing learns (a fixed policy on a frozen classifier)
            self._optimize(loss)
        if self.method.explores and self.val_split is not None \
                and self.global_step % self.method.explore_every == 0:
            vi = torch.randint(len(self.val_split), (x.shape[0],), generator=self.explore_gen).to(self.device)
            # nn.Module types its submodules as `Tensor | Module`; the classifier's head is a callable module
            head = cast("Callable[[torch.Tensor], torch.Tensor]", self.model.head)
            logs.update(self.method.explore(to_float(self.val_split.x[vi]), self.val_split.y[vi], ctx, head))
        return self._stats(loss, per_sample, out, y, n_views, views, logs)

    def classifier_lr(self) -> float | None:
        """The classifier's learning rate this step (`StepContext.lr`, warm-up included); None if it does not train."""
        if self.model_opt is None:
            return None
        return float(self.model_opt.param_groups[0]["lr"]) * self.warmup_factor()

    def warmup_factor(self) -> float:
        """The classifier's linear lr warm-up at this step: (step + 1) / N for the first N = `train.warmup_steps`
        steps (declared by the benchmarks whose recipe warms up: the public Tiny-ImageNet and contrastive
        code), else 1. It scales the step only: schedulers and checkpoints keep the unscaled lr."""
        n = int(self.s.get("train.warmup_steps", 0))
        return (self.global_step + 1) / n if self.global_step < n else 1.0

    def _optimize(self, loss: torch.Tensor) -> None:
        """One backward pass, then a step of every optimizer whose parameters got a gradient."""
        optimizers = [opt for opt in (self.model_opt, self.method_opt) if opt is not None]
        for opt in optimizers:
            opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.method_opt is not None:  # the classifier's gradients are averaged by DDP, the method's here
            self.replicas.average_grads(p for group in self.method_opt.param_groups for p in group["params"])
        stepped = False
        warm = self.warmup_factor()
        for opt in optimizers:
            if any(p.grad is not None for group in opt.param_groups for p in group["params"]):
                scaled = opt is self.model_opt and warm < 1.0
                if scaled:
                    lrs = [group["lr"] for group in opt.param_groups]
                    for group in opt.param_groups:
                        group["lr"] *= warm
                self.scaler.step(opt)
                if scaled:
                    for group, lr in zip(opt.param_groups, lrs):
                        group["lr"] = lr
                stepped = True
        if stepped:
            self.scaler.update()

    def _stats(self, loss: torch.Tensor, per_sample: torch.Tensor, out: torch.Tensor, y: torch.Tensor, n_views: int,
               views: Views, logs: dict[str, torch.Tensor]) -> dict[str, float]:
        stats = {"loss": loss.detach(), "task_loss": per_sample.detach().mean()}
        stats.update(self.task.step_metrics(out, y, n_views))
        if views.entropy is not None:
            stats["entropy"] = views.entropy.detach().mean()
        stats.update(logs)
        return _scalars(stats)

    def _start_progress(self, show: bool = True) -> RunProgress:
        """The run's progress from where it stands (after a resume: the checks already run count as done)."""
        checks = len(self._check_steps)
        val = len(self.val_split) if self.val_split is not None else 0
        plan = RunPlan(epochs=self.epochs, steps_per_epoch=self.steps_per_epoch, batch_size=self.s["train.batch_size"],
                       val_images=val, checks_per_epoch=checks if val else 0, test_images=len(self.test_split),
                       test_views=views_evaluated(self.method, self.s["eval.tta_views"]))
        done = self.epoch * checks + sum(s <= self.step_in_epoch for s in self._check_steps)
        show = show and bool(self.s["run.progress"]) and self.replicas.main and showing_progress()
        return RunProgress(plan, show, epoch=self.epoch, step=self.epoch * self.steps_per_epoch + self.step_in_epoch,
                           checks_done=done if val else 0)

    def fit(self) -> dict[str, float]:
        """Train (resuming if a checkpoint exists), then report on the test split."""
        self.try_resume()
        self._started = time.monotonic()
        if self.model_opt is None and self.method_opt is None:
            self.epoch = self.epochs  # nothing can learn (a fixed policy on a frozen classifier): report only
        self.progress = self._start_progress()
        while self.epoch < self.epochs:
            self.model.train()
            self.method.train()
            self.method.begin_epoch(self.epoch)  # idempotent: called again after a resume
            batches = self._batches(self._order(self.epoch))
            self.progress.start_epoch(self.epoch, self.step_in_epoch)
            while self.step_in_epoch < self.steps_per_epoch:
                began = time.monotonic()
                stats = self._step(*next(batches))
                self.replicas.average_buffers(self.method)
                self.step_in_epoch += 1
                self.global_step += 1
                mid = self.step_in_epoch < self.steps_per_epoch
                # one agreement per step: the global batch's statistics, a checkpoint, a stop
                stats, (due, stop) = self.replicas.agree(stats, mid and self._checkpoint_due(), STOP.is_set())
                if self.first_loss is None:
                    self.first_loss = stats.get("task_loss", stats["loss"])
                if not math.isfinite(stats["loss"]):
                    raise TrainingDiverged(f"the training loss is {stats['loss']} at step {self.global_step} "
                                           f"(epoch {self.epoch + 1}); lower train.lr or check the data")
                if self.global_step % self.s["run.log_every"] == 0 or self.step_in_epoch == self.steps_per_epoch:
                    self.records.write(step=self.global_step, epoch=self.epoch, split="train", metrics=stats)
                self.progress.step(time.monotonic() - began, stats)
                if mid and self.step_in_epoch in self._check_steps:
                    self._validation_check()  # before any checkpoint of this step, so a resume skips it
                if mid and (due or stop):
                    if stop:
                        STOP.set()  # every process stops at this step
                    self.save()
                    self._stop_if_asked()
            batches.close()  # a streamed epoch's loader workers exit
            self._end_epoch()
            self.epoch += 1
            self.step_in_epoch = 0
            self.save()
            if self.replicas.any(STOP.is_set()):
                STOP.set()
            self._stop_if_asked()
        return self._final_report()

    def elapsed(self) -> float:
        """Seconds `fit` has spent on this run, summed over attempts up to the last checkpoint of each
        (work an interruption loses is not counted): the run's wall time in the results."""
        return self._elapsed_before + time.monotonic() - self._started

    def _stop_if_asked(self) -> None:
        """After a checkpoint: exit if a termination signal asked for it (resumable, not failed)."""
        if STOP.is_set():
            self.progress.close()
            raise SystemExit(143)

    def _validation_check(self) -> None:
        """The validation statistics of the current state, for the method's controllers only
        (the epoch's own validation record and model selection stay at the epoch's end)."""
        metrics: dict[str, float] = {}
        if self.val_split is not None and self.replicas.main:
            with self.progress.evaluation("validation check", len(self.val_split)):
                metrics = self.task.evaluate(self.model, self.method, self.val_split, self.device, final=False).metrics
        self.method.validation_check(self.epoch, self.replicas.broadcast(metrics))

    def _end_epoch(self) -> None:
        self.replicas.check_in_sync(self.model, self.method)
        split = self.val_split
        metrics: dict[str, float] = {}
        if split is not None and self.replicas.main:  # rank 0 evaluates, every process follows its decisions
            with self.progress.evaluation("validation", len(split)):
                metrics = self.task.evaluate(self.model, self.method, split, self.device, final=False).metrics
        metrics = self.replicas.broadcast(metrics)
        metrics.update(_scalars(self.method.end_epoch(self.epoch, metrics)))
        score = self.task.score(metrics)
        if self.scheduler is not None:
            if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                self.scheduler.step(score)
            else:
                self.scheduler.step()
        if self.model_opt is not None:
            metrics["lr"] = self.model_opt.param_groups[0]["lr"]
        chosen = split is None or self.s["train.select"] == "last" or score >= self.best["score"]  # ties: the later
        selected = chosen and self.method.selectable(self.epoch)
        if selected:
            keep = self.replicas.main  # only rank 0 reports
            self.best = {"score": score, "epoch": self.epoch,
                         "model": copy.deepcopy(self.model.state_dict()) if keep else None,
                         "method": copy.deepcopy(self.method.state_dict()) if keep else None}
        self.records.write(step=self.global_step, epoch=self.epoch, split="val", metrics=metrics)
        self.progress.end_epoch(metrics, self.task.score_key, selected and split is not None, metrics.get("lr"))

    def _final_report(self) -> dict[str, float]:
        if not self.replicas.main:
            return dict(self.replicas.broadcast(None))  # rank 0's report
        if self.best["model"] is not None:
            self.model.load_state_dict(self.best["model"])
            self.method.load_state_dict(self.best["method"])
        with self.progress.final_evaluation():
            ev = self.task.evaluate(self.model, self.method, self.test_split, self.device, final=True)
        metrics: dict[str, Any] = ev.metrics  # floats, plus the `diagnosis` strings
        metrics["best_epoch"] = self.best["epoch"]
        metrics["steps"] = self.global_step
        metrics.update(self._diagnosis(metrics))
        self.records.write(step=self.global_step, epoch=self.epochs, split="test", metrics=metrics)
        self._save_inspect(ev.inspect)
        atomic_torch_save(self.run_dir / FINAL_WEIGHTS,
                          {"model": self.model.state_dict(), "method": self.method.state_dict()})
        self.progress.finish(self.elapsed())
        return dict(self.replicas.broadcast(metrics))

    def _diagnosis(self, test: dict[str, Any]) -> dict[str, str]:
        """`diagnosis` (flags) and `diagnosis_detail` when the loss diverged or the learned distribution
        did not learn: `diverged` from every training and validation loss and the test loss, the
        entropy flags from the validation records up to the reported epoch."""
        last = self.best["epoch"] if self.best["epoch"] >= 0 else self.epochs  # the reported state's epoch
        records = [r for r in read_records(self.run_dir / RECORDS).records if isinstance(r.get("metrics"), dict)]
        val = [r["metrics"] for r in records if r.get("split") == "val"]
        train = [r["metrics"] for r in records if r.get("split") == "train"]
        reported = [r["metrics"] for r in records if r.get("split") == "val" and r.get("epoch", 0) <= last]
        band = self.method.entropy_band()
        why = divergence(train, val, test, start=self.first_loss)
        flags = (["diverged"] if why else []) + diagnose(reported, band)
        return {"diagnosis": ",".join(flags), "diagnosis_detail": explain(flags, reported, band, why)} if flags else {}

    def _save_inspect(self, inspect: dict[str, torch.Tensor]) -> None:
        """inspect.pt: everything a figure needs, so results never rebuild a method or load data.

        Per-sample values of the first `eval.inspect_samples` test images: the images (`x`, uint8),
        labels (`y`), their positions in the test split (`index`), the split's ground truth
        (`meta.<name>`, e.g. rotation intervals, object boxes) and the method's distribution
        parameters (its `inspect` keys); and the method's `inspect_constants` as `const.<name>`.
        """
        k = min(self.s["eval.inspect_samples"], len(self.test_split))
        constants = self.method.inspect_constants()
        if not k or not (inspect or constants):
            return
        test = self.test_split
        payload: dict[str, torch.Tensor] = {"x": test.x[:k].contiguous(), "y": test.y[:k].contiguous(),
                                            "index": torch.arange(k)}
        payload.update({f"meta.{name}": v[:k].contiguous() for name, v in test.meta.items()})
        payload.update({name: v[:k].contiguous() for name, v in inspect.items()})
        payload.update({f"const.{name}": v.detach().cpu().contiguous() for name, v in constants.items()})
        atomic_torch_save(self.run_dir / INSPECT, payload)
