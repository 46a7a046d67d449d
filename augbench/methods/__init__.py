"""Augmentation methods: the interface, the registry and one module per method.

Discovery imports every public module or package here, so each must register a method;
a method's helpers live inside its package (`instaaug/`).
"""

from __future__ import annotations

from typing import Any

from augbench.hparams import HParam
from augbench.methods.base import (
    AugmentationMethod,
    MethodContext,
    StepClassifier,
    StepContext,
    Views,
    build_param_optimizer,
    repeat_views,
    step_classifier,
)
from augbench.registry import Registry

METHODS: Registry[type[AugmentationMethod]] = Registry("method", "augbench.methods", "augbench.methods")
register_method = METHODS.register


def get_method(name: str) -> type[AugmentationMethod]:
    """The method class registered under `name`."""
    return METHODS.get(name)


def list_methods(pattern: str = "*") -> list[str]:
    """Registered method names matching a shell-style pattern."""
    return METHODS.names(pattern)


def create_method(name: str, ctx: MethodContext, **hparams: Any) -> AugmentationMethod:
    """Build a method by name with validated hyperparameters (timm's `create_model` convention)."""
    return get_method(name)(ctx, **hparams)


__all__ = [
    "AugmentationMethod",
    "HParam",
    "METHODS",
    "MethodContext",
    "StepClassifier",
    "StepContext",
    "Views",
    "build_param_optimizer",
    "create_method",
    "get_method",
    "list_methods",
    "register_method",
    "repeat_views",
    "step_classifier",
]
