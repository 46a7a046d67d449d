"""Training/eval mode switching that restores exactly what it found."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn


@contextmanager
def eval_mode(*modules: nn.Module) -> Iterator[None]:
    """Put modules in eval mode for the block, then restore every submodule's own training flag.

    Per submodule, not per module: a frozen classifier keeps its children in eval mode while its
    own flag follows the trainer, and that must survive an evaluation unchanged.
    """
    flags = [(m, m.training) for module in modules for m in module.modules()]
    for module in modules:
        module.eval()
    try:
        yield
    finally:
        for m, flag in flags:
            m.training = flag
