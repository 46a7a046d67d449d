"""What `augbench list` prints, precomputed so the listing starts without torch.

The registries are filled by importing every method and benchmark module, and those import
torch: seconds for a listing. `build()` reads the live registries into plain data; the
built-in entries are committed as package data (`augbench/data/catalog.json`), and `listing()`
serves that file unless something it cannot know about may be registered: entry-point plugins,
modules added to or removed from the method/benchmark packages since it was written, or
registrations already made in this process. Then it reads the live registries, so the listing
is always complete. Regenerate the file with `python -m augbench.catalog`.
"""

from __future__ import annotations

import argparse
import json
import pkgutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from augbench.atomic import atomic_write_text
from augbench.catalog_file import FORMAT, RESOURCE, committed
from augbench.errors import AugbenchError

#: Section of the catalog -> the package its classes are discovered in (also their entry-point group).
PACKAGES: dict[str, str] = {"methods": "augbench.methods", "benchmarks": "augbench.benchmarks"}
REGENERATE = "python -m augbench.catalog"


def discovered_modules() -> dict[str, list[str]]:
    """The modules registry discovery would import, found from the file tree without importing them."""
    root = Path(__file__).parent
    return {section: sorted(info.name for info in pkgutil.iter_modules([str(root / package.rsplit(".", 1)[1])])
                            if not info.name.startswith("_"))
            for section, package in PACKAGES.items()}


def build(builtin_only: bool = True) -> dict[str, Any]:
    """The listing's data, from the live registries (imports every method and benchmark, so torch).

    `builtin_only` keeps classes defined inside augbench, so the committed file never depends on
    which plugins were installed, or registered by the caller, when it was generated.
    """
    from augbench.benchmarks import BENCHMARKS  # the registries import torch: only to rebuild
    from augbench.methods import METHODS
    from augbench.settings import settings_spec

    def keep(cls: type, package: str) -> bool:
        return not builtin_only or cls.__module__.startswith(package + ".")

    def values(preset: Mapping[str, Any]) -> list[dict[str, str]]:
        return [{"name": k, "repr": repr(v)} for k, v in preset.items()]

    def default_variants(bench: str, family: str) -> dict[str, str]:
        """The variant each method's default configuration on `bench` is (its recipe; none that refuses it)."""
        out = {}
        for method, cls in method_classes.items():
            if not keep(cls, PACKAGES["methods"]):
                continue
            try:
                hp = cls.spec().resolve(dict(cls.recipes.get(bench, {})))
            except AugbenchError:
                continue
            out[method] = cls.variant_name(hp, family)
        return out

    methods = {}
    method_classes = {name: METHODS.get(name) for name in METHODS.names()}
    for name, method_cls in method_classes.items():
        if not keep(method_cls, PACKAGES["methods"]):
            continue
        methods[name] = {
            "families": sorted(method_cls.families),
            "summary": " ".join((method_cls.__doc__ or "").strip().split("\n\n")[0].split()),  # first paragraph
            "hparams": [{"name": k, "describe": hp.describe(), "help": hp.help}
                        for k, hp in method_cls.hparams.items()],
            "variants": [{"variant": v, "values": values(preset)} for v, preset in method_cls.variants.items()],
        }
    benchmarks = {}
    for name in BENCHMARKS.names():
        bench_cls = BENCHMARKS.get(name)
        if not keep(bench_cls, PACKAGES["benchmarks"]):
            continue
        spec = settings_spec(name).params
        load_doc = bench_cls.load.__doc__
        benchmarks[name] = {
            "family": bench_cls.family,
            "task": bench_cls.task,
            "model": f"{spec['model.name'].default}",
            "embedded": bool(bench_cls.embedded),
            "paper": bench_cls.paper,
            "description": bench_cls.description,
            "dataset": load_doc.strip().splitlines()[0] if load_doc else bench_cls.description,
            "settings": [{"name": k, "describe": hp.describe()} for k, hp in spec.items()],
            # the methods' recipes for this benchmark (`AugmentationMethod.recipes`), by method name
            "method_defaults": [{"method": method, "values": values(cls.recipes[name])}
                                for method, cls in method_classes.items()
                                if name in cls.recipes and keep(cls, PACKAGES["methods"])],
            # what results call a method's runs when they are its default configuration here (no registry there)
            "default_variants": default_variants(name, bench_cls.family or ""),
        }
    return {"format": FORMAT, "modules": discovered_modules(), "methods": methods, "benchmarks": benchmarks}


def dumps(catalog: dict[str, Any]) -> str:
    """The file's exact text: sorted keys, so regenerating an unchanged suite changes no byte."""
    return json.dumps(catalog, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def _may_hold_more(catalog: dict[str, Any]) -> bool:
    """Whether the live registries could differ from `catalog`: plugins, new modules, or in-process registrations."""
    if any(package in sys.modules for package in PACKAGES.values()):
        return True  # registries in use here: a caller may have registered its own classes
    if catalog.get("modules") != discovered_modules():
        return True
    from importlib.metadata import entry_points  # slow to import: only when the file may be stale

    return any(entry_points(group=group) for group in PACKAGES.values())


def listing() -> dict[str, Any]:
    """The catalog `augbench list` prints: the committed one when it is complete, else the live registries'."""
    catalog = committed()
    if catalog is None or _may_hold_more(catalog):
        return build(builtin_only=False)
    return catalog


def render(catalog: dict[str, Any], what: str = "all", verbose: bool = False) -> list[str]:
    """The lines of `augbench list [what] [-v]`: one line per method and benchmark; `verbose` adds every
    hyperparameter, benchmark setting and per-benchmark method default, and the datasets."""
    lines: list[str] = []
    methods, benchmarks = catalog["methods"], catalog["benchmarks"]
    if what in ("all", "methods"):
        lines.append("methods:")
        width = max((len(n) for n in methods), default=0)
        for name in sorted(methods):
            m = methods[name]
            lines.append(f"  {name:<{width}}  [{','.join(m['families'])}]  {m['summary']}")
            if verbose:
                lines.extend(f"      {hp['name']}: {hp['describe']}" + (f"  -- {hp['help']}" if hp["help"] else "")
                             for hp in m["hparams"])
                for v in m["variants"]:
                    shown = ", ".join(f"{x['name']}={x['repr']}" for x in v["values"])
                    lines.append(f"      variant={v['variant']}: {shown}")
    if what in ("all", "benchmarks"):
        lines.append("benchmarks:")
        width = max((len(n) for n in benchmarks), default=0)
        for name in sorted(benchmarks):
            b = benchmarks[name]
            data = "embedded" if b["embedded"] else "data.root required"
            paper = f"  paper: {b['paper']}" if b["paper"] else ""
            lines.append(f"  {name:<{width}}  {b['family']}, {b['task']}, {b['model']} ({data}){paper}")
            if verbose:
                if b["description"]:
                    lines.append(f"      {b['description']}")
                lines.extend(f"      {s['name']}: {s['describe']}" for s in b["settings"])
                for entry in b["method_defaults"]:
                    shown = ", ".join(f"{v['name']}={v['repr']}" for v in entry["values"])
                    lines.append(f"      method defaults {entry['method']}: {shown}")
    if what == "datasets" or (what == "all" and verbose):
        lines.append("datasets:")
        lines.extend(f"  {name}: {benchmarks[name]['dataset']}" for name in sorted(benchmarks))
    if not verbose:
        lines.append("(augbench list -v: every hyperparameter, benchmark setting and dataset)")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """Write the committed catalog from the live registries (`--check`: only say whether it is current)."""
    parser = argparse.ArgumentParser(prog=REGENERATE, description="Regenerate augbench/data/catalog.json.")
    parser.add_argument("--check", action="store_true", help="exit 1 if the committed file is stale; write nothing")
    args = parser.parse_args(argv)
    text = dumps(build())
    path = Path(__file__).parent / RESOURCE
    current = path.read_text(encoding="utf-8") if path.exists() else None
    if args.check:
        if current != text:
            from augbench.log import configure

            configure().error(f"{path} is stale; regenerate it with `{REGENERATE}`")
            return 1
        return 0
    if current != text:
        atomic_write_text(path, text)
        print(f"wrote {path}")
    else:
        print(f"{path} is current")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
