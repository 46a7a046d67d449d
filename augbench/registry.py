"""Name -> class registries with timm-style helpers, shared by methods and benchmarks.

Built-in entries are discovered by importing every module of their package, so adding a
method is one file; external packages add theirs through an entry-point group.
"""

from __future__ import annotations

import fnmatch
import importlib
import pkgutil
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Generic, TypeVar

from augbench.errors import ConfigError, unknown_name

T = TypeVar("T")


class Registry(Generic[T]):
    """A registry of classes keyed by a stable name."""

    def __init__(self, kind: str, package: str, entry_point_group: str) -> None:
        self.kind = kind
        self.package = package
        self.entry_point_group = entry_point_group
        self._items: dict[str, T] = {}
        self._loaded = False

    def register(self, name: str) -> Callable[[T], T]:
        """Class decorator: `@registry.register("name")`; the name is set on the class."""

        def deco(cls: T) -> T:
            existing = self._items.get(name)
            if existing is not None and existing is not cls:
                qual = f"{existing.__module__}.{existing.__qualname__}"  # type: ignore[attr-defined]
                if qual != f"{cls.__module__}.{cls.__qualname__}":  # type: ignore[attr-defined]
                    raise ConfigError(f"{self.kind} {name!r} is registered twice ({qual})")
            cls.name = name  # type: ignore[attr-defined]
            self._items[name] = cls
            return cls

        return deco

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        pkg = importlib.import_module(self.package)
        for info in pkgutil.iter_modules(pkg.__path__):
            if not info.name.startswith("_"):
                importlib.import_module(f"{self.package}.{info.name}")
        for ep in entry_points(group=self.entry_point_group):
            ep.load()  # importing the module runs its @register decorators

    def get(self, name: str) -> T:
        """The class registered as `name`, or a one-line error listing the valid names."""
        self._load()
        if name not in self._items:
            raise unknown_name(self.kind, name, self.names())
        return self._items[name]

    def names(self, pattern: str = "*") -> list[str]:
        """Registered names matching a shell-style pattern, sorted."""
        self._load()
        return sorted(n for n in self._items if fnmatch.fnmatch(n, pattern))

    def __contains__(self, name: str) -> bool:
        self._load()
        return name in self._items
