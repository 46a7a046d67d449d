"""JSON and TOML read from files and the command line, with nesting bounded.

Python's parsers recurse once per level of nesting: `seeds = [[[[...]]]]` a few thousand deep
raises RecursionError from deep inside the parser (thousands of lines of traceback), and a
document just under the interpreter's limit parses but breaks whatever walks it next. No
augbench file nests more than a few levels, so deeper input is refused here as malformed,
with the same exception type the parser raises for a syntax error (both are ValueError), and
callers report it as they report any unreadable file.

    loads_json('{"a": [1, 2]}')          # {'a': [1, 2]}
    loads_json("[" * 5000 + "]" * 5000)  # NestingTooDeep: nested more than 64 levels deep
"""

from __future__ import annotations

import json
import tomllib
from typing import Any

#: deepest nesting of lists and tables/objects accepted (augbench's own files use at most 4)
MAX_DEPTH = 64


class NestingTooDeep(ValueError):
    """JSON or TOML nested deeper than MAX_DEPTH."""

    def __init__(self) -> None:
        super().__init__(f"nested more than {MAX_DEPTH} levels deep")
        self.msg = str(self)  # as json.JSONDecodeError carries it


def depth(value: Any, limit: int = MAX_DEPTH) -> int:
    """Levels of lists, tuples and dicts in `value` (a scalar is 0), counted without recursion up to `limit` + 1."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, (list, tuple, dict)):
            level += 1
            deepest = max(deepest, level)
            if deepest > limit:
                return deepest
            stack.extend((v, level) for v in (item.values() if isinstance(item, dict) else item))
    return deepest


def _bounded(value: Any) -> Any:
    if depth(value) > MAX_DEPTH:
        raise NestingTooDeep
    return value


def loads_json(text: str | bytes) -> Any:
    """`json.loads`, refusing nesting deeper than MAX_DEPTH (NestingTooDeep, a ValueError)."""
    try:
        return _bounded(json.loads(text))
    except RecursionError:
        raise NestingTooDeep from None


def loads_toml(text: str) -> dict[str, Any]:
    """`tomllib.loads`, refusing nesting deeper than MAX_DEPTH (NestingTooDeep, a ValueError)."""
    try:
        return _bounded(tomllib.loads(text))
    except RecursionError:
        raise NestingTooDeep from None
