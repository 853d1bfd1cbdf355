"""Files of a run directory, written so that a crash never leaves a half-record behind.

* jsonl files (metrics, probes, events) are appended whole: a record exists once its line,
  newline included, is in the file; the checkpoint stores each file's size, and a resume
  truncates to it (dropping records written after the checkpoint and any torn last line).
* files that are rewritten (config.json, summary.json, the checkpoint) are written atomically:
  a temporary file in the same directory, fsync, rename, fsync of the directory.

Non-finite floats are written as the strings "nan", "inf", "-inf" (strict JSON has no NaN);
``float()`` reads them back.
"""
from __future__ import annotations

import json
import math
import os
import platform
import sys

from theory import provenance as source_provenance
from theory.fileio import atomic_write_bytes

# The layout of a run directory.  1: runs written before this field existed (config.json without
# it); 2: config.json records format_version, the git revision and each probed model
# (gpu_check.probes.describe_model), and probes.jsonl may hold 'n/a' records with a note (a
# variant that needs lambda where no layer input X is known).  Version 1 reads unchanged.
FORMAT_VERSION = 2

METRICS = "metrics.jsonl"
PROBES = "probes.jsonl"
EVENTS = "events.jsonl"
CONFIG = "config.json"
SUMMARY = "summary.json"
CHECKPOINT = "checkpoint.pt"


def jsonable(value):
    """Floats (numpy or not) as JSON numbers, non-finite ones as strings; containers recursively."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:   # numpy / torch scalar
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def dumps(record) -> str:
    return json.dumps(jsonable(record), allow_nan=False, separators=(",", ":"))


def append_records(path: str, records) -> None:
    """Append records as one write of whole lines, flushed to the OS."""
    if not records:
        return
    text = "".join(dumps(r) + "\n" for r in records)
    with open(path, "a", encoding="utf-8") as f:
        f.write(text)
        f.flush()


def atomic_write_json(path: str, obj) -> None:
    atomic_write_bytes(path, (json.dumps(jsonable(obj), indent=2, allow_nan=False) + "\n").encode())


class RecordWriter:
    """Open append handles on a run's record files; every write is whole lines, flushed."""

    def __init__(self, run_dir: str, names):
        self.run_dir = run_dir
        self.files = {name: open(os.path.join(run_dir, name), "a", encoding="utf-8") for name in names}

    def write(self, name: str, rows) -> None:
        if rows:
            f = self.files[name]
            f.write("".join(dumps(r) + "\n" for r in rows))
            f.flush()

    def sizes(self) -> dict:
        """Bytes in each file, after an fsync: what a checkpoint remembers."""
        out = {}
        for name, f in self.files.items():
            f.flush()
            os.fsync(f.fileno())
            out[name] = os.path.getsize(os.path.join(self.run_dir, name))
        return out

    def close(self) -> None:
        for f in self.files.values():
            f.close()


def truncate_records(run_dir: str, sizes: dict) -> None:
    """Cut each record file back to the size the checkpoint saw."""
    for name, size in sizes.items():
        path = os.path.join(run_dir, name)
        size = int(size)
        if not os.path.exists(path):
            if size:
                raise FileNotFoundError(f"{path} is missing but the checkpoint saw {size} bytes in it")
            continue
        if os.path.getsize(path) < size:
            raise ValueError(f"{path} has {os.path.getsize(path)} bytes, fewer than the {size} the "
                             "checkpoint saw: the run directory was changed after the checkpoint")
        with open(path, "rb+") as f:
            f.truncate(size)
            os.fsync(f.fileno())


RUN_FILES = (CONFIG, CHECKPOINT, METRICS, PROBES)


def occupied_by(run_dir: str) -> list:
    """The files of a run already in ``run_dir`` (empty when a new run may start there)."""
    return [n for n in RUN_FILES if os.path.exists(os.path.join(run_dir, n))]


def format_version(meta: dict) -> int:
    """The format_version of a run's config.json (1 when absent); newer than this code: an error."""
    version = meta.get("format_version", 1)
    if not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
        raise ValueError(f"config.json has format_version {version!r}; this code reads 1 to {FORMAT_VERSION}")
    return version


def provenance(device) -> dict:
    """What every config.json records about where and from what a run came."""
    return {"format_version": FORMAT_VERSION, "packages": package_versions(), "git": git_revision(),
            "device": device_description(device), "command": command_line()}


class RunConfigError(ValueError):
    """A run directory whose config.json is missing, not JSON, or not a run's config."""


def read_run_meta(run_dir: str) -> dict:
    """The parsed config.json of a run directory (an object with a 'config' object): the one
    reader every tool uses; RunConfigError naming the file otherwise."""
    path = os.path.join(run_dir, CONFIG)
    if not os.path.isfile(path):
        raise RunConfigError(f"{run_dir!r} is not a run directory: it has no {CONFIG} ({path} is missing)")
    try:
        with open(path, encoding="utf-8") as f:
            meta = json.load(f)
    except (ValueError, UnicodeDecodeError) as err:
        raise RunConfigError(f"{path} is not valid JSON, so it is not a run's config ({err})") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("config"), dict):
        raise RunConfigError(f"{path} is not a run's config (no 'config' object)")
    return meta


def read_jsonl(path: str) -> list:
    """Complete records of a jsonl file; a final line without its newline (a torn append) is not
    a record and is skipped.  A malformed complete line is an error naming the file and line."""
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        text = f.read()
    lines = text.split("\n")
    complete = lines[:-1]          # the part after the last newline is '' or a torn record
    out = []
    for i, line in enumerate(complete, 1):
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{i}: not a JSON record ({e}): {line[:80]!r}") from None
    return out


# ---------------------------------------------------------------------------------------------
# Provenance
# ---------------------------------------------------------------------------------------------

PACKAGES = ("torch", "numpy", "scipy", "sympy", "tqdm")


def package_versions() -> dict:
    """The versions a training run depends on (theory.provenance, with torch and tqdm)."""
    return source_provenance.package_versions(PACKAGES)


def git_revision(start: str = None) -> dict:
    """HEAD of the repository holding this package, and whether the tree has local changes."""
    return source_provenance.git_state(start or os.path.dirname(os.path.abspath(__file__)))


def device_description(device) -> str:
    import torch

    if device.type == "cuda":
        tf32 = torch.backends.cuda.matmul.allow_tf32 or torch.backends.cudnn.allow_tf32
        return f"cuda:{torch.cuda.get_device_name(device)} (TF32 {'on' if tf32 else 'off'})"
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def command_line() -> list:
    return [sys.executable, *sys.argv]
