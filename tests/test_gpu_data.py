"""gpu_check.data: CIFAR-10 in its real pickle format, the synthetic stand-in, the DLN data."""
import os
import pickle
import pickletools

import numpy as np
import pytest

from gpu_check import data
from gpu_check.data import DataError


def cifar_batch_bytes(images: np.ndarray, labels: list) -> bytes:
    """One file of ``cifar-10-batches-py`` as the dataset ships it: a protocol-2 pickle of a
    dict with bytes keys, b'data' a uint8 (n, 3072) array (1024 red, 1024 green, 1024 blue
    values, each row-major), b'labels' a list of ints -- with numpy's globals under the names
    of the numpy that wrote the real files (numpy.core.multiarray)."""
    batch = {b"batch_label": b"testing batch 1 of 1", b"labels": list(labels),
             b"data": images.reshape(len(labels), -1), b"filenames": [b"x.png"] * len(labels)}
    raw = pickle.dumps(batch, protocol=2).replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    return raw


def write_cifar(root, n_per_batch: int, n_test: int, seed: int = 0) -> str:
    """A tiny cifar-10-batches-py directory; image k of the whole train set has red channel k."""
    rng = np.random.default_rng(seed)
    d = os.path.join(root, "cifar-10-batches-py")
    os.makedirs(d)
    k = 0
    for name in data.CIFAR_TRAIN_FILES + (data.CIFAR_TEST_FILE,):
        n = n_test if name == data.CIFAR_TEST_FILE else n_per_batch
        images = rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)
        if name != data.CIFAR_TEST_FILE:
            images[:, 0] = (np.arange(k, k + n) % 256)[:, None, None]
            k += n
        with open(os.path.join(d, name), "wb") as f:
            f.write(cifar_batch_bytes(images, list(rng.integers(0, 10, size=n))))
    return d


def test_the_written_file_uses_the_globals_of_the_real_dataset():
    raw = cifar_batch_bytes(np.zeros((1, 3, 32, 32), np.uint8), [3])
    globals_ = {arg for op, arg, _ in pickletools.genops(raw) if op.name == "GLOBAL"}
    assert {"numpy.core.multiarray _reconstruct", "numpy ndarray", "numpy dtype"} <= globals_


def test_cifar_loader_reads_images_channel_first_in_file_order(tmp_path):
    d = write_cifar(tmp_path, n_per_batch=3, n_test=2)
    x_tr, y_tr, x_te, y_te = data.load_cifar(str(tmp_path), n_train=14, n_test=2)
    assert x_tr.shape == (14, 3, 32, 32) and x_tr.dtype == np.uint8
    assert np.array_equal(x_tr[:, 0, 5, 7], np.arange(14))      # red channel carries the index
    first = data.read_cifar_batch(os.path.join(d, "data_batch_1"))[0]
    with open(os.path.join(d, "data_batch_1"), "rb") as f:
        raw = pickle.load(f, encoding="bytes")[b"data"]
    assert np.array_equal(first[1, 2].reshape(-1), raw[1, 2048:3072])   # blue = last 1024 bytes
    assert y_tr.dtype == np.int64 and x_te.shape == (2, 3, 32, 32) and len(y_te) == 2


def test_cifar_directory_may_be_named_itself_or_its_parent(tmp_path):
    d = write_cifar(tmp_path, n_per_batch=2, n_test=2)
    assert data.find_cifar_dir(str(tmp_path)) == d
    assert data.find_cifar_dir(d) == d


def test_image_data_from_cifar_is_named_cifar_and_standardised(tmp_path):
    write_cifar(tmp_path, n_per_batch=8, n_test=4)
    d = data.image_data(0, str(tmp_path), n_train=40, n_test=4, side=8)
    assert d.name.startswith("cifar-10(") and "synthetic" not in d.name
    assert d.x_train.shape == (40, 3, 8, 8) and d.x_train.dtype == np.float32
    assert np.allclose(d.x_train.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    assert np.allclose(d.x_train.std(axis=(0, 2, 3)), 1, atol=1e-4)


def test_a_missing_data_directory_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        data.load_cifar(str(tmp_path / "nowhere"), 1, 1)
    with pytest.raises(DataError, match="holds no CIFAR-10 batches"):
        data.load_cifar(str(tmp_path), 1, 1)


def test_a_missing_training_batch_is_named(tmp_path):
    d = write_cifar(tmp_path, n_per_batch=2, n_test=2)
    os.remove(os.path.join(d, "data_batch_2"))
    with pytest.raises(DataError, match="data_batch_2' is missing"):
        data.load_cifar(str(tmp_path), 10, 2)


@pytest.mark.parametrize("content, words", [
    (b"not a pickle at all", "not a valid pickle"),
    (pickle.dumps({b"labels": [1]}, protocol=2), "lacks b'data'"),
    (pickle.dumps({b"data": np.zeros((2, 100), np.uint8), b"labels": [1, 2]}, protocol=2), r"shape \(n, 3072\)"),
    (pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [1]}, protocol=2), "1 labels for 2 images"),
    (pickle.dumps({b"data": np.zeros((1, 3072), np.uint8), b"labels": [10]}, protocol=2), r"labels must lie in \[0, 10\)"),
])
def test_a_malformed_batch_file_is_a_clear_error(tmp_path, content, words):
    path = tmp_path / "data_batch_1"
    path.write_bytes(content)
    with pytest.raises(DataError, match=words):
        data.read_cifar_batch(str(path))


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_a_batch_file_that_would_run_code_is_refused_not_run(tmp_path):
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": _Evil(), b"labels": []}, protocol=2))
    with pytest.raises(DataError, match="is not allowed"):
        data.read_cifar_batch(str(path))


def test_synthetic_images_are_reproducible_class_structured_and_named_synthetic():
    a = data.image_data(5, None, n_train=64, n_test=16, side=32)
    b = data.image_data(5, None, n_train=64, n_test=16, side=32)
    assert np.array_equal(a.x_train, b.x_train) and np.array_equal(a.y_train, b.y_train)
    assert "synthetic" in a.name and "NOT CIFAR-10" in a.name
    assert not np.array_equal(a.x_train, data.image_data(6, None, 64, 16, 32).x_train)
    x, y = data.synthetic_images(0, 2000, stream=1)
    # class structure: the mean image of a class is closer to its own class's images than to others'
    means = np.stack([x[y == c].mean(0) for c in range(10)]).reshape(10, -1)
    flat = x.reshape(len(x), -1).astype(np.float64)
    nearest = np.argmin(((flat[:, None, :] - means[None]) ** 2).sum(-1), axis=1)
    assert np.mean(nearest == y) > 0.5      # far above chance (0.1)


def test_dln_data_fits_a_x_with_gaussian_inputs():
    d = data.dln_data(0, 1000, 10)
    assert d.x.shape == (1000, 10) and d.A.shape == (10, 10)
    assert np.allclose(d.target, d.x @ d.A.T)
    assert abs(d.x.std() - 1) < 0.05 and abs(d.A.std() - 1) < 0.3


def test_batch_order_is_a_reshuffle_per_epoch_that_depends_only_on_seed_and_step():
    order = data.BatchOrder(seed=1, n=10, batch_size=3)        # 3 batches an epoch, 1 dropped
    epoch0 = np.concatenate([order.indices(s) for s in range(3)])
    assert len(set(epoch0)) == 9
    assert not np.array_equal(order.indices(3), order.indices(0))
    fresh = data.BatchOrder(seed=1, n=10, batch_size=3)
    assert np.array_equal(fresh.indices(4), order.indices(4))
    state = order.state(4)
    assert (state["epoch"], state["index"]) == (1, 1)


# ------------------------------------------------------------------ scikit-learn's real digits

def test_the_real_digits_are_cifar_shaped_exact_upsamplings_with_a_fixed_split():
    from sklearn.datasets import load_digits

    x_tr, y_tr, x_te, y_te = data.load_digits_images(data.DIGITS_TRAIN, data.DIGITS_TEST)
    assert x_tr.shape == (1500, 3, 32, 32) and x_te.shape == (297, 3, 32, 32) and x_tr.dtype == np.uint8
    raw = load_digits()
    # pixel replication: every 4x4 block of every channel is the scaled 8x8 pixel; labels in file order
    first = np.rint(raw.images[0] * 255 / 16).astype(np.uint8)
    assert np.array_equal(x_tr[0, 2, ::4, ::4], first) and np.array_equal(x_tr[0, 0], x_tr[0, 1])
    assert np.array_equal(x_tr[0, 0, 3::4, 3::4], first)
    assert np.array_equal(y_tr, raw.target[:1500]) and np.array_equal(y_te, raw.target[1500:])
    assert set(np.unique(y_tr)) == set(range(10)) and x_tr.max() == 255


def test_image_data_on_the_digits_says_they_are_real_digits_not_cifar10():
    d = data.image_data(0, data.DIGITS, 200, 50, 32)
    assert "sklearn-digits" in d.name and "NOT CIFAR-10" in d.name and "200 train / 50 test" in d.name
    assert abs(float(d.x_train.mean())) < 1e-5 and d.y_test.shape == (50,)


def test_asking_the_digits_for_more_images_than_they_have_is_a_clear_error():
    with pytest.raises(DataError, match="1500 training and 297 test"):
        data.load_digits_images(10_000, 2_000)


def test_the_data_option_is_none_the_digits_or_an_existing_directory(tmp_path):
    data.check_source(None)
    data.check_source(data.DIGITS)
    data.check_source(str(tmp_path))
    with pytest.raises(DataError, match="no such directory"):
        data.check_source(str(tmp_path / "absent"))
