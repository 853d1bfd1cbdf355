"""Provenance of a generated result: the git revision of this checkout and the package versions."""
from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The base install (pyproject.toml's dependencies): what every result of the theory and numeric
# layers depends on.
BASE_PACKAGES = ("numpy", "scipy", "sympy", "mpmath")


def git_state(start=ROOT) -> dict:
    """{'revision', 'dirty'} of the repository holding `start` (this package by default): HEAD
    and whether the tree has local changes; both None, with a 'note', outside a git checkout."""
    def git(*args):
        return subprocess.run(["git", *args], cwd=start, capture_output=True, text=True, timeout=10)

    try:
        head = git("rev-parse", "HEAD")
        status = git("status", "--porcelain")
    except (OSError, subprocess.SubprocessError) as e:
        return {"revision": None, "dirty": None, "note": f"git unavailable: {e}"}
    if head.returncode != 0:
        return {"revision": None, "dirty": None, "note": head.stderr.strip().splitlines()[-1:] or "not a git repository"}
    return {"revision": head.stdout.strip(), "dirty": bool(status.stdout.strip())}


def git_revision() -> str:
    """HEAD of the repository holding this package, or 'unknown' outside a git checkout."""
    return git_state()["revision"] or "unknown"


def package_versions(packages=BASE_PACKAGES) -> dict:
    """{'python': ..., package: version} for ``packages``; None for one that is not installed."""
    out = {"python": platform.python_version()}
    for name in packages:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out
