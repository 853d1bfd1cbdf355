"""Bad input gets an error that names the problem and the value."""
import numpy as np
import pytest

from numeric.quantities import bn_channel_quantities
from theory.bn import BatchNormInputError
from theory.lemma45 import ToyModelError, exact_optima, toy_quantities_numpy


def test_batch_of_size_one_is_rejected():
    with pytest.raises(BatchNormInputError, match="batch of size 1: BatchNorm needs m >= 2"):
        bn_channel_quantities(np.ones((3, 1)), np.ones((3, 1)), 1.0)


def test_constant_batch_with_zero_epsilon_is_rejected_but_allowed_with_epsilon():
    y = np.array([[2.0, 2.0, 2.0]])
    with pytest.raises(BatchNormInputError, match="constant batch .* epsilon = 0"):
        bn_channel_quantities(y, np.ones((1, 3)), 1.0, eps=0.0)
    q = bn_channel_quantities(y, np.ones((1, 3)), 1.0, eps=1e-5)
    assert np.all(q.y_hat == 0)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_or_inf_is_rejected_with_its_position(bad):
    y = np.zeros((2, 4))
    y[1, 2] = bad
    with pytest.raises(BatchNormInputError, match=r"y\[1, 2\] = .*must be finite"):
        bn_channel_quantities(y + np.arange(4), np.ones((2, 4)), 1.0)


def test_mismatched_shapes_are_rejected():
    with pytest.raises(BatchNormInputError, match=r"g has shape \(2, 3\), expected \(2, 4\)"):
        bn_channel_quantities(np.random.default_rng(0).normal(size=(2, 4)), np.ones((2, 3)), 1.0)
    with pytest.raises(BatchNormInputError, match="H has shape"):
        bn_channel_quantities(np.random.default_rng(0).normal(size=(2, 4)), np.ones((2, 4)), 1.0, H=np.eye(3))


def test_negative_epsilon_and_zero_gamma_are_rejected():
    y = np.random.default_rng(0).normal(size=(2, 4))
    with pytest.raises(BatchNormInputError, match="epsilon must be finite and >= 0"):
        bn_channel_quantities(y, y, 1.0, eps=-1.0)
    with pytest.raises(BatchNormInputError, match="gamma = 0"):
        bn_channel_quantities(y, y, 0.0)


def test_toy_model_rejects_degenerate_data():
    with pytest.raises(ToyModelError, match="singular"):
        exact_optima([[1, 1], [2, 2], [3, 3]], [0, 1, 0])
    with pytest.raises(ToyModelError, match="expected"):
        toy_quantities_numpy(np.zeros((2, 3)), np.zeros((2, 3)), np.zeros((2, 2)))
