"""Where commands write (`--out`, `--root`), refused before any work when it cannot be written.

A folder that is a file, lies under a file, or whose nearest existing folder is not writable
would fail only when the first file is written: after minutes of training or plotting, with an
OSError traceback. These checks say it in one line first, naming the option to change.

    check_folder(Path("site"), "output folder", "--out")
    # ConfigError: output folder site is a file, not a folder; choose another --out
"""

from __future__ import annotations

import os
from pathlib import Path

from augbench.errors import ConfigError


def check_folder(folder: Path | str, what: str, option: str) -> None:
    """Refuse `folder` (created later if missing) when it or a folder above it is a file, or cannot be written."""
    folder = Path(folder)
    for p in (folder, *folder.absolute().parents):
        if p.exists():
            if not p.is_dir():
                where = "is" if p == folder else f"lies under {p}, which is"
                raise ConfigError(f"{what} {folder} {where} a file, not a folder; choose another {option}")
            if not os.access(p, os.W_OK | os.X_OK):
                raise ConfigError(f"{what} {folder}: {p} is not writable; choose another {option}")
            return


def check_file(path: Path | str, what: str, option: str) -> None:
    """Refuse a file to be written at `path` when it is a folder or its folder cannot be one (`check_folder`)."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{what} {path} is a folder, not a file; choose another {option}")
    check_folder(path.parent, f"{what} {path}: folder", option)
