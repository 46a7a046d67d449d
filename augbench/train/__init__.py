"""The trainer, tasks, evaluation and checkpoints."""
