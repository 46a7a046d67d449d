"""The stop flag: a termination signal asks the trainer to checkpoint after its current step and exit.

Set by a sweep job's SIGTERM handler (`augbench.sweep.job`), read by the trainer
(`augbench.train.trainer`): a grace period (SLURM's KillWait) then saves the work instead of
losing it. Below both, so neither imports the other.
"""

from __future__ import annotations

import threading

STOP = threading.Event()
