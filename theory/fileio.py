"""File output at the edges of the toolkit: written atomically (temp file, fsync, rename) or not at all.

The one implementation used by the docs generator, the report, the numeric documents and the
training runs' checkpoints and rewritten records.

What a user's ``--out`` may name, and what happens:

* a regular file, or a path that does not exist yet: written to a temporary file beside it,
  fsynced and renamed over it, with the mode any new file of the user gets (0666 less the
  umask), or the existing file's mode when it is replaced;
* a symbolic link: the link is followed and its target is replaced atomically (the link stays
  a link);
* a character device or a FIFO (``/dev/stdout``, ``/dev/null``, a pipe): written directly, since
  it cannot be replaced by a rename without destroying it (a write error such as ENOSPC from
  ``/dev/full`` is raised);
* anything else that is not a regular file (a directory, a socket, a block device):
  ``OutputPathError`` naming it.
"""
from __future__ import annotations

import os
import stat
import tempfile


class OutputPathError(OSError):
    """An output path that cannot be written the way it was named."""


def _resolved(path: str) -> str:
    """The path a write lands on: a symbolic link is followed to its final target."""
    return os.path.realpath(path) if os.path.islink(path) else path


def _special_kind(path: str):
    """'stream' for a character device or FIFO (written directly), None for a regular file or a
    path that does not exist; OutputPathError for anything else."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return None
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISCHR(mode) or stat.S_ISFIFO(mode):
        return "stream"
    what = "a directory" if stat.S_ISDIR(mode) else "not a regular file"
    raise OutputPathError(21 if stat.S_ISDIR(mode) else 22, f"is {what}", path)


def check_writable(path: str) -> None:
    """Raise OSError now if `path` could not be written later (missing or read-only folder, a
    directory, a socket)."""
    target = _resolved(os.fspath(path))
    if _special_kind(target) == "stream":
        if not os.access(target, os.W_OK):
            raise PermissionError(13, "not writable", target)
        return
    folder = os.path.dirname(os.path.abspath(target)) or "."
    if not os.path.isdir(folder):
        raise FileNotFoundError(2, "no such folder", folder)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".probe-", suffix=".tmp")
    os.close(fd)
    os.unlink(tmp)


def fsync_dir(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _new_file_mode(existing: str) -> int:
    """The mode a plain ``open(path, 'w')`` would give: the existing file's, else 0666 & ~umask."""
    try:
        return stat.S_IMODE(os.stat(existing).st_mode)
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def atomic_write_bytes(path, data: bytes) -> None:
    """Write `data` to `path` atomically where `path` is (or will be) a regular file; through a
    symbolic link to its target; directly to a character device or FIFO."""
    target = _resolved(os.fspath(path))
    if _special_kind(target) == "stream":
        with open(target, "wb") as f:
            f.write(data)
            f.flush()
        return
    directory = os.path.dirname(os.path.abspath(target))
    mode = _new_file_mode(target)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(target) + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    fsync_dir(directory)


def atomic_write_text(path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))
