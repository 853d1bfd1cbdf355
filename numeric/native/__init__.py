"""Native kernels, compiled from their C source on first use and loaded with ctypes.

One kernel today: ``gram_pass.c``, the one pass of numeric.one_pass over a float64 H.  NumPy's
BLAS routes reach 1.8x the time of reading H once (OpenBLAS, a product with 4 columns in row
blocks); the kernel reads each row of H once and forms its three dot products in one sweep
(measured in numeric.bench: ``pass`` in its machine line).

Compiled with the machine's C compiler ($CC, else cc, gcc or clang) at -O3 -march=native
(falling back to -O3 where the compiler refuses -march=native), never -ffast-math: the kernel
keeps IEEE semantics, so NaN and Inf propagate as in the NumPy pass, and only the order of the
float64 sums differs (the tests bound the difference by float64 rounding).  The shared library
is cached under $BNVERIFY_CACHE (default ~/.cache/bnverify/native), keyed by a hash of the
source, the compiler's version line, the CPU's model and feature flags, and the compile flags, and written atomically (a temporary file
renamed into place), so concurrent first uses do not see a half-written library.

Where no compiler works, or BNVERIFY_NATIVE=0, :func:`gram_pass` returns None and the caller
takes its NumPy pass: the same arithmetic, slower.  :func:`status` says which and why.
"""
from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Optional

import numpy as np

SOURCE = Path(__file__).with_name("gram_pass.c")
DISABLE_ENV = "BNVERIFY_NATIVE"          # "0": never compile or load; callers take the NumPy pass
CACHE_ENV = "BNVERIFY_CACHE"
FLAG_SETS = (("-O3", "-march=native"), ("-O3",))
LINK_FLAGS = ("-shared", "-fPIC")
COMPILE_TIMEOUT_S = 120


def _compiler() -> Optional[str]:
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        path = shutil.which(name) if name else None
        if path:
            return path
    return None


def _cache_dir() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    try:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    except RuntimeError:                 # no home directory to be found (a bare service account)
        base = Path(tempfile.gettempdir()) / f"bnverify-{os.getuid() if hasattr(os, 'getuid') else 'user'}"
    return base / "bnverify" / "native"


def _cpu_identity() -> str:
    """What -march=native compiles for: the CPU's model and feature flags (Linux), else what
    platform says.  In the cache key, so that a home directory shared by a cluster's machines
    never hands one machine a library built for another's instruction set (SIGILL)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            lines = [line for line in f if line.startswith(("model name", "flags", "Features", "CPU part"))]
        if lines:
            return "".join(sorted(set(lines)))
    except OSError:
        pass
    return f"{platform.machine()} {platform.processor()}"


def _version_line(compiler: str) -> str:
    try:
        out = subprocess.run([compiler, "--version"], capture_output=True, text=True, timeout=30)
        return (out.stdout.splitlines() or [""])[0]
    except (OSError, subprocess.SubprocessError):
        return ""


def _build(compiler: str, flags: tuple, target: Path) -> Optional[str]:
    """Compile SOURCE into ``target`` atomically; the compiler's complaint, or None on success."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(dir=target.parent, suffix=".so.partial")
    os.close(fd)
    try:
        out = subprocess.run([compiler, *flags, *LINK_FLAGS, str(SOURCE), "-o", partial],
                             capture_output=True, text=True, timeout=COMPILE_TIMEOUT_S)
        if out.returncode != 0:
            return (out.stderr.strip().splitlines() or [f"exit {out.returncode}"])[-1]
        os.replace(partial, target)
        return None
    except (OSError, subprocess.SubprocessError) as exc:
        return str(exc)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)


@functools.lru_cache(maxsize=None)
def _load():
    """(the ctypes function, a description) or (None, the reason there is none)."""
    if os.environ.get(DISABLE_ENV, "1") == "0":
        return None, f"{DISABLE_ENV}=0"
    compiler = _compiler()
    if compiler is None:
        return None, "no C compiler found ($CC, cc, gcc, clang)"
    version = _version_line(compiler)
    reasons = []
    for flags in FLAG_SETS:
        key = hashlib.sha256("\0".join([SOURCE.read_text(), compiler, version, _cpu_identity(), *flags])
                             .encode()).hexdigest()[:16]
        target = _cache_dir() / f"gram_pass-{key}.so"
        try:
            if not target.exists():
                complaint = _build(compiler, flags, target)
                if complaint:
                    reasons.append(f"{' '.join(flags)}: {complaint}")
                    continue
            library = ctypes.CDLL(str(target))
        except OSError as exc:
            reasons.append(f"{' '.join(flags)}: {exc}")
            continue
        function = library.gram_pass
        pointer = ctypes.POINTER(ctypes.c_double)
        function.argtypes = [ctypes.c_ssize_t, ctypes.c_ssize_t] + [pointer] * 10
        function.restype = None
        return function, f"native C ({Path(compiler).name} {' '.join(flags)})"
    return None, "compiling numeric/native/gram_pass.c failed: " + "; ".join(reasons)


def status() -> str:
    """Which pass float64 inputs take, and why: 'native C (...)' or 'numpy: <reason>'."""
    function, description = _load()
    return description if function is not None else f"numpy: {description}"


def gram_pass(H, y_hat, b, gamma, beta):
    """(H1, Hy, g, s, gg) of numeric.one_pass for float64, C-contiguous ndarrays (H (N, m, m), y_hat
    and b (N, m), gamma and beta (N,)); None when the kernel does not apply (no kernel, another
    dtype such as the exact tests' SymPy objects, a strided view), and the caller then takes its
    NumPy pass."""
    arrays = (H, y_hat, b, gamma, beta)
    if not all(isinstance(a, np.ndarray) and a.dtype == np.float64 and a.flags.c_contiguous for a in arrays):
        return None
    function, _ = _load()
    if function is None:
        return None
    n, m = y_hat.shape
    if H.shape != (n, m, m) or b.shape != (n, m) or gamma.shape != (n,) or beta.shape != (n,):
        raise ValueError(f"gram_pass: shapes H {H.shape}, y_hat {y_hat.shape}, b {b.shape}, gamma {gamma.shape}, "
                         f"beta {beta.shape} do not fit (N, m, m), (N, m), (N, m), (N,), (N,)")
    H1, Hy, g, s = (np.empty((n, m)) for _ in range(4))
    gg = np.empty(n)
    pointer = lambda a: a.ctypes.data_as(ctypes.POINTER(ctypes.c_double))  # noqa: E731
    function(n, m, *map(pointer, (H, y_hat, b, gamma, beta, H1, Hy, g, s, gg)))
    return H1, Hy, g, s, gg
