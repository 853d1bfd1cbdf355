"""File output at the edges of the toolkit: written atomically or not at all."""
from __future__ import annotations

import os
import tempfile


def check_writable(path: str) -> None:
    """Raise OSError now if `path` could not be written later (missing or read-only folder)."""
    folder = os.path.dirname(os.path.abspath(path)) or "."
    if os.path.isdir(path):
        raise IsADirectoryError(21, "is a directory", path)
    if not os.path.isdir(folder):
        raise FileNotFoundError(2, "no such folder", folder)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".probe-", suffix=".tmp")
    os.close(fd)
    os.unlink(tmp)


def write_atomically(path: str, text: str) -> None:
    """Write text to a temporary file beside `path`, then rename it over `path` (atomic on POSIX)."""
    folder = os.path.dirname(os.path.abspath(path)) or "."
    fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
