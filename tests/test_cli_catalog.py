"""`augbench list` from the committed catalog: current, torch-free, identical to the live listing, complete."""

from __future__ import annotations

import fnmatch
import importlib.metadata
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from augbench import catalog
from augbench.benchmarks import BENCHMARKS
from augbench.cli import main
from augbench.methods import METHODS, AugmentationMethod, Views, register_method

ROOT = Path(catalog.__file__).parent


def test_the_committed_catalog_is_what_the_registries_hold():
    committed = (ROOT / catalog.RESOURCE).read_text(encoding="utf-8")
    assert committed == catalog.dumps(catalog.build()), (
        f"augbench/{catalog.RESOURCE} is stale (a method or benchmark changed); regenerate it with "
        f"`{catalog.REGENERATE}` and commit it")


def test_the_catalog_sections_follow_the_registries():
    assert catalog.PACKAGES == {"methods": METHODS.package, "benchmarks": BENCHMARKS.package}
    assert [METHODS.entry_point_group, BENCHMARKS.entry_point_group] == list(catalog.PACKAGES.values())


def test_the_catalog_ships_as_package_data():
    config = tomllib.loads((ROOT.parent / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["augbench"]
    assert any(fnmatch.fnmatch(catalog.RESOURCE, p) for p in patterns)


def _list_in_a_fresh_process(argv: list[str]) -> tuple[str, list[str]]:
    code = ("import contextlib, io, sys; from augbench.cli import main; out = io.StringIO()\n"
            f"with contextlib.redirect_stdout(out): rc = main({argv!r})\n"
            "assert rc == 0; sys.stdout.write(out.getvalue()); "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'torchvision', 'pandas', 'matplotlib', "
            "'seaborn', 'numpy', 'submitit'}), file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return done.stdout, done.stderr.strip().splitlines()


@pytest.mark.parametrize("argv", [["list"], ["list", "-v"]])
def test_list_imports_no_heavy_library_and_prints_the_live_listing(argv):
    """`augbench list` answers at once, and prints exactly what the registries would."""
    out, err = _list_in_a_fresh_process(argv)
    assert err[-1] == "[]"
    assert out == "\n".join(catalog.render(catalog.build(), "all", "-v" in argv)) + "\n"


@pytest.fixture
def outside_registries(monkeypatch):
    """This process as `augbench list` starts: method and benchmark modules not imported yet."""
    for package in catalog.PACKAGES.values():
        monkeypatch.delitem(sys.modules, package, raising=False)


def test_the_committed_catalog_serves_when_nothing_else_can_be_registered(outside_registries):
    if any(importlib.metadata.entry_points(group=g) for g in catalog.PACKAGES.values()):
        pytest.skip("an augbench plugin is installed here")
    assert catalog.listing() == catalog.committed()


def test_a_new_module_in_a_registry_package_reads_the_live_registries(outside_registries, monkeypatch):
    stale = dict(catalog.committed() or {})
    stale["modules"] = {**stale["modules"], "methods": stale["modules"]["methods"][:-1]}
    monkeypatch.setattr(catalog, "committed", lambda: stale)
    monkeypatch.setattr(catalog, "build", lambda builtin_only=True: {"live": builtin_only})
    assert catalog.listing() == {"live": False}


def test_an_entry_point_plugin_reads_the_live_registries(outside_registries, monkeypatch):
    plugins = {"augbench.methods": ["my_package.my_rotation"]}
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: plugins.get(group, []))
    monkeypatch.setattr(catalog, "build", lambda builtin_only=True: {"live": builtin_only})
    assert catalog.listing() == {"live": False}


@pytest.fixture
def registered_here():
    @register_method("test-catalog-listed")
    class Listed(AugmentationMethod):
        """Registered by the caller in this process, not in the committed catalog."""

        families = frozenset({"rotation"})

        def sample(self, x, ctx, n_views=1):
            return Views(x, 1)

    yield Listed.name
    METHODS._items.pop(Listed.name)


def test_a_method_registered_in_this_process_is_listed(registered_here, capsys):
    assert main(["list", "methods"]) == 0
    out = capsys.readouterr().out
    assert re.search(rf"^  {registered_here} +\[rotation\]  Registered by the caller", out, re.MULTILINE)
    assert registered_here not in catalog.build()["methods"]  # and never written into the committed file
