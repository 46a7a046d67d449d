"""Names and `--set` keys checked from the committed catalog, before torch is imported.

The full validation (`augbench.runs.resolve`, `Grid.expand`) needs the registries, which import
torch and every method: tens of seconds on a loaded machine before a misspelt name is
reported. These checks raise the same one-line errors, with the same close match, from the
names in `augbench/data/catalog.json` (benchmarks and their settings, methods with their
hyperparameters and variants), so a typo fails as fast as an argparse error. They check names
and syntax only; values, families and tasks are left to the full validation, which runs next.

The catalog is used only when it can be trusted: it describes the method and benchmark modules
on disk, and no registry is loaded in this process (a caller may have registered its own
classes). A name the catalog lacks is refused only when no plugin (entry point) could provide
it; otherwise the full validation decides.

    check_run("glyphs-rotation", "instaaug", {"h_mn": "3"})
    # ConfigError: unknown setting 'h_mn' for benchmark glyphs-rotation and method instaaug
    #              (did you mean 'h_min'?); ...
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from augbench.catalog import PACKAGES, discovered_modules
from augbench.catalog_file import committed
from augbench.errors import ConfigError, unknown_name
from augbench.overrides import VARIANT, check_variant, split_overrides

if TYPE_CHECKING:
    from augbench.sweep.grid import Grid

#: catalog section -> the kind of name it holds, as the registries name it in errors
KINDS = {"benchmarks": "benchmark", "methods": "method"}


class CatalogNames:
    """The names of the committed catalog: which exist, and what `--set` may give each."""

    def __init__(self, catalog: Mapping[str, Any]) -> None:
        self.catalog = catalog

    @classmethod
    def load(cls) -> CatalogNames | None:
        """The committed catalog's names, or None when the catalog cannot be trusted here."""
        if any(package in sys.modules for package in PACKAGES.values()):
            return None  # registries loaded: this process may have registered classes of its own
        catalog = committed()
        if catalog is None or catalog.get("modules") != discovered_modules():
            return None
        return cls(catalog)

    def known(self, section: str, name: str) -> bool:
        """True if the catalog has `name`; False if only a plugin could (the registries decide); else refused."""
        names = self.catalog[section]
        if name in names:
            return True
        from importlib.metadata import entry_points  # slow to import: only for a name the catalog lacks

        if entry_points(group=PACKAGES[section]):
            return False
        raise unknown_name(KINDS[section], name, names)

    def settings(self, benchmark: str) -> list[str]:
        return [s["name"] for s in self.catalog["benchmarks"][benchmark]["settings"]]

    def variants(self, method: str) -> list[str]:
        return [v["variant"] for v in self.catalog["methods"][method].get("variants", [])]

    def settable(self, method: str) -> frozenset[str] | None:
        """What `--set` may give `method` (`AugmentationMethod.settable`); None when the catalog lacks it."""
        entry = self.catalog["methods"].get(method)
        if entry is None:
            return None
        return frozenset(hp["name"] for hp in entry["hparams"]) | ({VARIANT} if entry.get("variants") else frozenset())

    def check_run(self, benchmark: str, method: str, overrides: Mapping[str, Any]) -> None:
        """`resolve`'s errors for names: the benchmark, the method, each override's key, the variant."""
        if not self.known("benchmarks", benchmark) or not self.known("methods", method):
            return
        settable = self.settable(method)
        assert settable is not None
        _, hparams = split_overrides(overrides, self.settings(benchmark), method, settable,
                                     f"benchmark {benchmark} and method {method}")
        if VARIANT in hparams:
            check_variant(method, str(hparams[VARIANT]), self.variants(method))

    def check_grid(self, grid: Grid, overrides: Mapping[str, Any] | None, seeds: Iterable[int] | None,
                   skip_unregistered: bool = False) -> None:
        """`Grid.expand`'s errors for names, each point's prefixed as there."""
        for point in grid.points(overrides, seeds, declared=self.settable):
            if skip_unregistered and not (point.method in self.catalog["methods"]
                                          and point.benchmark in self.catalog["benchmarks"]):
                continue
            try:
                self.check_run(point.benchmark, point.method, point.overrides)
            except ConfigError as exc:
                raise grid.point_error(point, exc) from None


def check_names(section: str, names: Iterable[str]) -> None:
    """Refuse a name of `section` ("methods", "benchmarks") that no registry can hold (shell patterns pass)."""
    catalog = CatalogNames.load()
    if catalog is None:
        return
    for name in names:
        if not any(c in name for c in "*?["):
            catalog.known(section, name)


def check_run(benchmark: str, method: str, overrides: Mapping[str, Any]) -> None:
    """`CatalogNames.check_run` with the committed catalog, when it can be trusted (else nothing)."""
    names = CatalogNames.load()
    if names is not None:
        names.check_run(benchmark, method, overrides)


def check_grid(grid: Grid, overrides: Mapping[str, Any] | None = None, seeds: Iterable[int] | None = None,
               skip_unregistered: bool = False) -> None:
    """`CatalogNames.check_grid` with the committed catalog, when it can be trusted (else nothing)."""
    names = CatalogNames.load()
    if names is not None:
        names.check_grid(grid, overrides, seeds, skip_unregistered)
