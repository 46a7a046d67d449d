"""The committed catalog (`augbench/data/catalog.json`) as plain data: no torch, no registry.

What `augbench list` shows of the built-in methods and benchmarks (`augbench.catalog` builds it
from the registries). Results read a benchmark's family, task and description here for run
directories written before config.json recorded them.
"""

from __future__ import annotations

import importlib.resources
import json
from typing import Any

RESOURCE = "data/catalog.json"
FORMAT = 1


def committed() -> dict[str, Any] | None:
    """The catalog shipped with the package, or None when it is missing or of another format."""
    try:
        text = importlib.resources.files("augbench").joinpath(RESOURCE).read_text(encoding="utf-8")
        data = json.loads(text)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("format") == FORMAT else None


def benchmark_entry(name: str) -> dict[str, Any]:
    """A built-in benchmark's catalog entry (family, task, description, paper, ...); {} when unknown."""
    entry = ((committed() or {}).get("benchmarks") or {}).get(name)
    return entry if isinstance(entry, dict) else {}
