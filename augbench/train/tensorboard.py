"""Optional TensorBoard logging (`run.tensorboard`): every record's scalars, live, under <run>/tensorboard.

records.jsonl stays the source of truth; this writer adds the same scalars (tag
`<split>/<metric>`, step = the record's global step) through torch.utils.tensorboard's
SummaryWriter, so a run can be watched with `tensorboard --logdir RUNS`. After a resume the
records of replayed steps are rewritten; the event file of the new attempt starts with
`purge_step` at its first record, so TensorBoard hides the old attempt's events from there on.
Off by default; the `tensorboard` package is needed only when it is switched on.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from augbench.errors import ConfigError
from augbench.rundir import TENSORBOARD, RecordWriter


def _require() -> None:
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        raise ConfigError("run.tensorboard needs the tensorboard package: pip install 'augbench[tensorboard]'") \
            from None


class TensorBoardRecords(RecordWriter):
    """A record writer that also writes each record's numeric metrics to TensorBoard."""

    def __init__(self, run_dir: Path, header: dict[str, Any]) -> None:
        _require()  # refused when the trainer is built, before anything is written
        super().__init__(run_dir, header)
        self.log_dir = Path(run_dir) / TENSORBOARD
        self._writer: Any = None

    def write(self, *, step: int, epoch: int, split: str, metrics: dict[str, Any]) -> None:
        super().write(step=step, epoch=epoch, split=split, metrics=metrics)
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter  # optional dependency: only with run.tensorboard

            self._writer = SummaryWriter(log_dir=str(self.log_dir), purge_step=step)
        for name, value in metrics.items():
            if hasattr(value, "item") and getattr(value, "numel", lambda: 1)() == 1:
                value = value.item()
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(float(value)):
                self._writer.add_scalar(f"{split}/{name}", float(value), global_step=step)
        self._writer.flush()  # watched live: each record is on disk when it is written
        if split == "test":  # the last record of a run
            self.close()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
