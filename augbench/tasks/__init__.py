"""Tasks by name (`Benchmark.task`): classification, contrastive, fixed-classifier, and plugins.

A task module registers its class with `@register_task("name")`; modules of this package are
discovered automatically, plugins through the entry-point group `augbench.tasks`.
"""

from __future__ import annotations

from augbench.models.modes import eval_mode
from augbench.registry import Registry
from augbench.tasks.base import Evaluation, Prerequisite, Task, TaskModel, inspect_means

TASKS: Registry[type[Task]] = Registry("task", "augbench.tasks", "augbench.tasks")
register_task = TASKS.register


def get_task(name: str) -> type[Task]:
    """The task class registered under `name`."""
    return TASKS.get(name)


def list_tasks() -> list[str]:
    return TASKS.names()


__all__ = ["Evaluation", "Prerequisite", "TASKS", "Task", "TaskModel", "eval_mode", "get_task", "inspect_means",
           "list_tasks", "register_task"]
