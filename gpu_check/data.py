"""Data: the DLN's Gaussian regression problem, CIFAR-10 from a directory, a synthetic,
class-structured stand-in for CIFAR-10 when no directory is given, and a small *real* image set
that ships inside scikit-learn (its handwritten digits, ``--data sklearn:digits``), so that the
VGG claims can be judged on real images on a machine without CIFAR-10.

Everything is a pure function of (config, seed): the same seed gives the same arrays and the
same batch order, so a resumed run sees exactly the batches an uninterrupted one would.
"""
from __future__ import annotations

import os
import pickle
from dataclasses import dataclass

import numpy as np

CIFAR_DIRNAME = "cifar-10-batches-py"
CIFAR_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_TEST_FILE = "test_batch"
CIFAR_CLASSES = 10
CIFAR_SIDE = 32
CIFAR_ROW = 3 * CIFAR_SIDE * CIFAR_SIDE   # 3072 bytes per image: 1024 R, 1024 G, 1024 B, row-major


class DataError(ValueError):
    """A missing or malformed data directory or file; the message names the path and the problem."""


# The real image set embedded in scikit-learn (sklearn.datasets.load_digits: the test part of the
# UCI "Optical Recognition of Handwritten Digits" set, 1797 grey 8x8 images, values 0..16, about
# 180 per class; no download).  ``--data DIGITS`` selects it; the split is fixed: the first
# DIGITS_TRAIN images train, the last DIGITS_TEST test.
DIGITS = "sklearn:digits"
DIGITS_TRAIN = 1500
DIGITS_TEST = 297
DIGITS_LEVELS = 16     # a pixel is the count (0..16) of inked pixels in a 4x4 block of the 32x32 scan


# Separate streams of one seed (numpy SeedSequence entropy [seed, stream]).
_STREAM_DLN, _STREAM_SYNTH_TRAIN, _STREAM_SYNTH_TEST, _STREAM_SYNTH_CLASSES, _STREAM_ORDER = range(5)


# ---------------------------------------------------------------------------------------------
# Deep linear network: fit A x from Gaussian x (Appendix A.1(2))
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RegressionData:
    name: str
    x: np.ndarray        # (n, d) float32, x ~ N(0, I)
    target: np.ndarray   # (n, d) float32, A x
    A: np.ndarray        # (d, d) float32, i.i.d. N(0, 1) entries


def dln_data(seed: int, n_samples: int, width: int) -> RegressionData:
    rng = np.random.default_rng([seed, _STREAM_DLN])
    A = rng.standard_normal((width, width)).astype(np.float32)    # (d, d)
    x = rng.standard_normal((n_samples, width)).astype(np.float32)  # (n, d)
    return RegressionData(name=f"dln-gaussian(seed={seed}, n={n_samples}, d={width})",
                          x=x, target=x @ A.T, A=A)                # target (n, d): rows A x_i


# ---------------------------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ImageData:
    name: str            # says where the images came from; 'synthetic' when they are not CIFAR-10
    x_train: np.ndarray  # (n_train, 3, s, s) float32, standardised per channel
    y_train: np.ndarray  # (n_train,) int64 in [0, 10)
    x_test: np.ndarray   # (n_test, 3, s, s) float32, standardised with the training statistics
    y_test: np.ndarray   # (n_test,) int64


class _CifarUnpickler(pickle.Unpickler):
    """Unpickles only what the CIFAR-10 files contain (numpy arrays, lists, dicts, bytes): the
    pickle format can run arbitrary code, and --data is a path the user names."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("_codecs", "encode"),   # how Python 3 writes bytes at pickle protocol 2
    }

    def find_class(self, module, name):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR-10 batch file")
        if module.startswith("numpy.core"):   # written by numpy < 2; same objects under numpy._core
            module = "numpy._core" + module[len("numpy.core"):]
        return super().find_class(module, name)


def check_source(data) -> None:
    """The value of a --data option: None (synthetic), DIGITS, or an existing directory; DataError
    otherwise (before any run starts, so that nothing is half-written)."""
    if data is not None and data != DIGITS and not os.path.isdir(data):
        raise DataError(f"--data {data!r}: no such directory (a CIFAR-10 directory, or {DIGITS})")


def find_cifar_dir(path: str) -> str:
    """``path`` itself or ``path/cifar-10-batches-py``, whichever holds the batch files."""
    if not os.path.isdir(path):
        raise DataError(f"data directory {path!r} does not exist")
    for candidate in (path, os.path.join(path, CIFAR_DIRNAME)):
        if os.path.isfile(os.path.join(candidate, CIFAR_TEST_FILE)):
            return candidate
    raise DataError(f"data directory {path!r} holds no CIFAR-10 batches: expected {CIFAR_TEST_FILE!r} "
                    f"and {CIFAR_TRAIN_FILES[0]!r}..{CIFAR_TRAIN_FILES[-1]!r} in it or in {CIFAR_DIRNAME}/")


def read_cifar_batch(path: str) -> tuple:
    """One ``cifar-10-batches-py`` file -> images (n, 3, 32, 32) uint8, labels (n,) int64."""
    try:
        with open(path, "rb") as f:
            batch = _CifarUnpickler(f, encoding="bytes").load()
    except FileNotFoundError:
        raise DataError(f"CIFAR-10 batch file {path!r} is missing") from None
    except Exception as e:  # a malformed pickle raises many kinds of error
        raise DataError(f"CIFAR-10 batch file {path!r} is not a valid pickle: {e}") from None
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        keys = sorted(batch) if isinstance(batch, dict) else type(batch).__name__
        raise DataError(f"CIFAR-10 batch file {path!r} lacks b'data'/b'labels' (found {keys})")
    data = np.asarray(batch[b"data"])
    labels = np.asarray(batch[b"labels"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != CIFAR_ROW:
        raise DataError(f"{path!r}: b'data' must be uint8 of shape (n, {CIFAR_ROW}), "
                        f"got {data.dtype} {data.shape}")
    if labels.shape != (data.shape[0],):
        raise DataError(f"{path!r}: {labels.shape[0] if labels.ndim else 0} labels for {data.shape[0]} images")
    if labels.size and (labels.min() < 0 or labels.max() >= CIFAR_CLASSES):
        raise DataError(f"{path!r}: labels must lie in [0, {CIFAR_CLASSES}), found "
                        f"{labels.min()}..{labels.max()}")
    return data.reshape(-1, 3, CIFAR_SIDE, CIFAR_SIDE), labels.astype(np.int64)


def load_cifar(path: str, n_train: int, n_test: int) -> tuple:
    """The first n_train training and n_test test images of CIFAR-10, uint8 (n, 3, 32, 32)."""
    root = find_cifar_dir(path)
    xs, ys, have = [], [], 0
    for name in CIFAR_TRAIN_FILES:
        if have >= n_train:
            break
        x, y = read_cifar_batch(os.path.join(root, name))
        xs.append(x)
        ys.append(y)
        have += len(y)
    if have < n_train:
        raise DataError(f"{root!r} holds {have} training images, the configuration asks for {n_train}")
    x_test, y_test = read_cifar_batch(os.path.join(root, CIFAR_TEST_FILE))
    if len(y_test) < n_test:
        raise DataError(f"{root!r} holds {len(y_test)} test images, the configuration asks for {n_test}")
    return (np.concatenate(xs)[:n_train], np.concatenate(ys)[:n_train],
            x_test[:n_test], y_test[:n_test])


def load_digits_images(n_train: int, n_test: int, side: int = CIFAR_SIDE) -> tuple:
    """scikit-learn's handwritten digits as CIFAR-shaped uint8 images (n, 3, side, side): each
    8x8 image scaled from 0..16 to 0..255, upsampled by pixel replication (nearest neighbour,
    exact) to side x side and repeated over the three colour channels, so the VGG's layout
    (five 2x2 poolings of a 32x32 input) applies unchanged.  The first n_train of the
    DIGITS_TRAIN training images and the first n_test of the DIGITS_TEST test images."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise DataError(f"--data {DIGITS} needs scikit-learn, which is not installed: "
                        "pip install scikit-learn (or the project's 'train' extra)") from None
    if n_train > DIGITS_TRAIN or n_test > DIGITS_TEST:
        raise DataError(f"{DIGITS} has {DIGITS_TRAIN} training and {DIGITS_TEST} test images; the configuration "
                        f"asks for {n_train} and {n_test} (use the vgg-digits preset)")
    if side % 8:
        raise DataError(f"cannot upsample the 8x8 digits to {side}x{side}: 8 does not divide {side}")
    digits = load_digits()
    images = np.asarray(digits.images, dtype=np.float64)                        # (1797, 8, 8) in 0..16
    labels = np.asarray(digits.target, dtype=np.int64)
    if images.shape != (DIGITS_TRAIN + DIGITS_TEST, 8, 8):
        raise DataError(f"scikit-learn's digits have shape {images.shape}, expected "
                        f"({DIGITS_TRAIN + DIGITS_TEST}, 8, 8)")
    grey = np.rint(images * (255.0 / DIGITS_LEVELS)).astype(np.uint8)           # (1797, 8, 8)
    big = np.kron(grey, np.ones((1, side // 8, side // 8), dtype=np.uint8))     # (1797, side, side)
    rgb = np.repeat(big[:, None], 3, axis=1)                                    # (1797, 3, side, side)
    return (rgb[:n_train], labels[:n_train],
            rgb[DIGITS_TRAIN:DIGITS_TRAIN + n_test], labels[DIGITS_TRAIN:DIGITS_TRAIN + n_test])


def synthetic_images(seed: int, n: int, stream: int, side: int = CIFAR_SIDE) -> tuple:
    """A class-structured image set: SYNTHETIC, not CIFAR-10.  uint8 (n, 3, side, side), labels.

    Each of 10 classes has a prototype: an 8x8x3 Gaussian pattern upsampled to side x side.  An
    image is its class prototype scaled by a contrast in [0.2, 0.8], plus a distractor (another
    class's prototype, weight in [0, 0.6]), translated (cyclically) by up to side/4 pixels, plus
    a brightness shift and per-pixel Gaussian noise (std 64 of 255).  Measured on vgg-cpu: 600
    steps reach ~88% training accuracy with BatchNorm and ~52% without -- learnable, not trivial.
    """
    classes = np.random.default_rng([seed, _STREAM_SYNTH_CLASSES])
    coarse = classes.standard_normal((CIFAR_CLASSES, 3, 8, 8))                     # (10, 3, 8, 8)
    proto = np.kron(coarse, np.ones((1, 1, side // 8, side // 8)))                  # (10, 3, s, s)
    rng = np.random.default_rng([seed, stream])
    labels = rng.integers(0, CIFAR_CLASSES, size=n).astype(np.int64)               # (n,)
    other = (labels + rng.integers(1, CIFAR_CLASSES, size=n)) % CIFAR_CLASSES      # a different class
    shift = rng.integers(-(side // 4), side // 4 + 1, size=(n, 2))
    contrast = rng.uniform(0.2, 0.8, size=n)
    distract = rng.uniform(0.0, 0.6, size=n)
    images = np.empty((n, 3, side, side), dtype=np.uint8)
    for i0 in range(0, n, 2048):                                                    # bounded memory
        i1 = min(n, i0 + 2048)
        noise = rng.normal(0.0, 64.0, size=(i1 - i0, 3, side, side))
        bright = rng.normal(0.0, 12.0, size=(i1 - i0, 1, 1, 1))
        for i in range(i0, i1):
            pattern = contrast[i] * proto[labels[i]] + distract[i] * proto[other[i]]   # (3, s, s)
            pattern = np.roll(pattern, tuple(shift[i]), axis=(1, 2))
            images[i] = np.clip(128 + 40 * pattern + bright[i - i0] + noise[i - i0], 0, 255)
    return images, labels


def downsample(images: np.ndarray, side: int) -> np.ndarray:
    """Average-pool uint8 (n, 3, 32, 32) images to (n, 3, side, side) float64; side divides 32."""
    s = images.shape[-1]
    if s % side:
        raise DataError(f"cannot downsample {s}x{s} images to {side}x{side}: {side} does not divide {s}")
    k = s // side
    return images.reshape(images.shape[0], 3, side, k, side, k).mean(axis=(3, 5))


def standardise(train: np.ndarray, test: np.ndarray) -> tuple:
    """Per-channel standardisation with the training set's mean and std -> float32."""
    train = train.astype(np.float64) / 255.0
    test = test.astype(np.float64) / 255.0
    mean = train.mean(axis=(0, 2, 3), keepdims=True)   # (1, 3, 1, 1)
    std = train.std(axis=(0, 2, 3), keepdims=True)
    if (std == 0).any():
        raise DataError("a colour channel is constant over the training images: cannot standardise")
    return ((train - mean) / std).astype(np.float32), ((test - mean) / std).astype(np.float32)


def image_data(seed: int, data_dir, n_train: int, n_test: int, side: int) -> ImageData:
    """CIFAR-10 from ``data_dir``, scikit-learn's digits when ``data_dir`` is DIGITS, or the
    synthetic stand-in generated from ``seed`` when None."""
    if data_dir is None:
        x_tr, y_tr = synthetic_images(seed, n_train, _STREAM_SYNTH_TRAIN)
        x_te, y_te = synthetic_images(seed, n_test, _STREAM_SYNTH_TEST)
        name = f"synthetic-cifar10-like(seed={seed}; NOT CIFAR-10)"
    elif data_dir == DIGITS:
        x_tr, y_tr, x_te, y_te = load_digits_images(n_train, n_test)
        name = "sklearn-digits(real 8x8 handwritten digits, upsampled x4, grey in 3 channels; NOT CIFAR-10)"
    else:
        x_tr, y_tr, x_te, y_te = load_cifar(data_dir, n_train, n_test)
        name = f"cifar-10({os.path.abspath(data_dir)})"
    if side != CIFAR_SIDE:
        x_tr, x_te = downsample(x_tr, side), downsample(x_te, side)
    x_tr, x_te = standardise(x_tr, x_te)
    return ImageData(name=f"{name}, {n_train} train / {n_test} test, {side}x{side}",
                     x_train=x_tr, y_train=y_tr, x_test=x_te, y_test=y_te)


# ---------------------------------------------------------------------------------------------
# Batch order
# ---------------------------------------------------------------------------------------------

def epoch_permutation(seed: int, epoch: int, n: int) -> np.ndarray:
    """The order of the n training examples in epoch ``epoch`` (a function of seed and epoch)."""
    return np.random.default_rng([seed, _STREAM_ORDER, epoch]).permutation(n)


@dataclass(frozen=True)
class BatchPosition:
    epoch: int
    index: int   # batch index within the epoch


def batch_position(step: int, n: int, batch_size: int) -> BatchPosition:
    """Each epoch is n // batch_size batches (a final partial batch is dropped)."""
    per_epoch = n // batch_size
    return BatchPosition(step // per_epoch, step % per_epoch)


class BatchOrder:
    """Batches of an epoch-wise shuffled dataset; caches the current epoch's permutation."""

    def __init__(self, seed: int, n: int, batch_size: int):
        self.seed, self.n, self.batch_size = seed, n, batch_size
        self._epoch, self._perm = None, None

    def permutation(self, epoch: int) -> np.ndarray:
        if epoch != self._epoch:
            self._epoch, self._perm = epoch, epoch_permutation(self.seed, epoch, self.n)
        return self._perm

    def indices(self, step: int) -> np.ndarray:
        pos = batch_position(step, self.n, self.batch_size)
        b = self.batch_size
        return self.permutation(pos.epoch)[pos.index * b:(pos.index + 1) * b]   # (batch_size,)

    def state(self, step: int) -> dict:
        """The data order at ``step`` (for the checkpoint): epoch, position and permutation."""
        pos = batch_position(step, self.n, self.batch_size)
        return {"epoch": pos.epoch, "index": pos.index, "permutation": self.permutation(pos.epoch).copy()}
