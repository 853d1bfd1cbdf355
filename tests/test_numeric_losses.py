"""numeric.losses: the closed-form gradient and Hessian of each loss head against torch.func
(grad and hessian of the same definition, float64)."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch.func import grad, hessian  # noqa: E402

from numeric import losses  # noqa: E402

# torch 2.13's torch.func scripts a helper on first use and warns that torch.jit.script is
# deprecated: torch's own internals, not this project's code.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")


def _check(at, loss_fn, z):
    for i in range(z.shape[0]):
        zi = torch.tensor(z[i], dtype=torch.float64)
        assert float(loss_fn(i, zi)) == pytest.approx(at.loss[i], rel=1e-12)
        np.testing.assert_allclose(grad(lambda x: loss_fn(i, x))(zi).numpy(), at.g[i], rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(hessian(lambda x: loss_fn(i, x))(zi).numpy(), at.H.dense()[i], rtol=1e-9, atol=1e-13)


def test_squared_error_matches_torch_func():
    rng = np.random.default_rng(0)
    z, t = rng.standard_normal((3, 5)), rng.standard_normal((3, 5))
    at = losses.squared_error(z, t)
    _check(at, lambda i, x: 0.5 * ((x - torch.from_numpy(t[i])) ** 2).sum() / 5, z)


def test_softmax_cross_entropy_through_a_linear_head_matches_torch_func():
    rng = np.random.default_rng(1)
    z, a, c, labels = rng.standard_normal((3, 6)), rng.standard_normal((3, 4)), rng.standard_normal((3, 6, 4)), \
        rng.integers(0, 4, (3, 6))
    at = losses.softmax_cross_entropy(z, a, c, labels)

    def loss(i, x):
        logits = x[:, None] * torch.from_numpy(a[i])[None] + torch.from_numpy(c[i])
        return torch.nn.functional.cross_entropy(logits, torch.from_numpy(labels[i]), reduction="mean")
    _check(at, loss, z)


def test_mlp_head_matches_torch_func():
    rng = np.random.default_rng(2)
    z = rng.standard_normal((3, 5))
    w1, b1, w2, t = (rng.standard_normal((3, 8)), rng.standard_normal((3, 8)), rng.standard_normal((3, 8)),
                     rng.standard_normal((3, 5)))
    at = losses.mlp_head(z, w1, b1, w2, t)

    def loss(i, x):
        u = torch.tanh(x[:, None] * torch.from_numpy(w1[i]) + torch.from_numpy(b1[i]))
        return 0.5 * ((u @ torch.from_numpy(w2[i]) - torch.from_numpy(t[i])) ** 2).sum() / 5
    _check(at, loss, z)


def test_a_wrong_hessian_would_be_caught():
    rng = np.random.default_rng(3)
    z, t = rng.standard_normal((1, 4)), rng.standard_normal((1, 4))
    at = losses.squared_error(z, t)
    wrong = losses.LossAtZ(at.loss, at.g, losses._diagonal(at.H.diag * 2))
    with pytest.raises(AssertionError):
        _check(wrong, lambda i, x: 0.5 * ((x - torch.from_numpy(t[i])) ** 2).sum() / 4, z)
