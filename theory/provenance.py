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


def git_revision() -> str:
    """HEAD of the repository holding this package, or 'unknown' outside a git checkout."""
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              timeout=5).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def package_versions(packages=BASE_PACKAGES) -> dict:
    """{'python': ..., package: version} for the installed ``packages``."""
    return {"python": platform.python_version(), **{name: metadata.version(name) for name in packages}}
