"""numeric.dln: the closed-form layer gradients G and G' of Definition 2.1 against torch autograd."""
import numpy as np
import pytest

from numeric import dln

torch = pytest.importorskip("torch")


def _torch_gradients(weights, X, T, i, lr):
    """G_i and G'_i by autograd: G' after layers 1..i-1 take their own gradient step."""
    Ws = [torch.tensor(W, dtype=torch.float64, requires_grad=True) for W in weights]
    Xt, Tt = torch.from_numpy(X), torch.from_numpy(T)

    def loss(ws):
        out = Xt
        for W in ws:
            out = W @ out
        return 0.5 * ((out - Tt) ** 2).sum() / X.shape[1]
    grads = torch.autograd.grad(loss(Ws), Ws)
    stepped = [(W - lr * G).detach() if j < i - 1 else W for j, (W, G) in enumerate(zip(Ws, grads))]
    G_after = torch.autograd.grad(loss(stepped), stepped[i - 1])[0]
    return grads[i - 1].detach().numpy(), G_after.detach().numpy()


@pytest.mark.parametrize("depth, width", [(2, 3), (4, 2), (5, 4)])
def test_layer_gradients_before_and_after_the_update_match_torch_autograd(depth, width):
    inst = dln.sample_dln(1, 4, depth, width)
    for i in range(1, depth + 1):
        G, G_prime = dln.gradients_before_and_after(inst, i)
        for k in range(4):
            tg, tgp = _torch_gradients([W[k] for W in inst.weights], inst.X[k], inst.T[k], i, float(inst.lr[k]))
            np.testing.assert_allclose(G[k], tg, rtol=1e-10, atol=1e-13)
            np.testing.assert_allclose(G_prime[k], tgp, rtol=1e-10, atol=1e-13)


def test_first_layer_gradient_is_unchanged_and_deeper_ones_shift():
    inst = dln.sample_dln(2, 6, 4, 3)
    G1, G1p = dln.gradients_before_and_after(inst, 1)
    assert np.array_equal(G1, G1p)
    G3, G3p = dln.gradients_before_and_after(inst, 3)
    assert (np.abs(G3 - G3p).max(axis=(1, 2)) > 0).all()


def test_bad_request_names_the_problem():
    with pytest.raises(ValueError, match="depth >= 2"):
        dln.sample_dln(0, 3, 1, 2)
