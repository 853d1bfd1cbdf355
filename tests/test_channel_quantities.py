"""theory.quantities.channel_quantities: one builder of a BatchNorm channel's quantities, the same
values over every back-end (NumPy, torch, SymPy, mpmath intervals), measured values used as given."""
from fractions import Fraction

import numpy as np
import pytest
import sympy as sp
import torch

from theory.ops import IntervalOps, NumpyOps, SympyOps, TorchOps
from theory.quantities import MATRICES, MEASURED, channel_quantities

NAMES = ("mu", "sigma", "y_hat", "grad_y_bn", "jac_z_y", "hess_bn", "H_frob", "H_gg", "H_vv", "hess_bn_vv",
         "gW_max", "gW_hat_max")
# float64 against exact: a short chain of length-m products, relative error a few m u
RTOL = 1e-12


def _instance():
    y = [Fraction(1, 2), Fraction(-3, 4), Fraction(2), Fraction(5, 8)]
    g = [Fraction(1, 3), Fraction(2), Fraction(-1, 5), Fraction(3, 7)]
    H = [[Fraction(i + 2 * j + 1, 3) if i <= j else Fraction(j + 2 * i + 1, 3) for j in range(4)] for i in range(4)]
    return dict(m=4, y=y, g=g, H=H, gamma=Fraction(3, 2), beta=Fraction(1, 3), eps=Fraction(1, 10), lam=Fraction(5, 4))


def _numpy(ex, ops):
    f = np.array
    q = channel_quantities(ops, np.full(1, 4.0), f([float(ex["gamma"])]), f([[float(v) for v in ex["g"]]]),
                           y=f([[float(v) for v in ex["y"]]]), beta=f([float(ex["beta"])]), eps=f([float(ex["eps"])]),
                           H=f([[[float(v) for v in row] for row in ex["H"]]]), lam=f([float(ex["lam"])]), matrices=MATRICES)
    return {k: np.asarray(q.values[k])[0] for k in NAMES}


def _torch(ex):
    t = lambda x: torch.tensor(x, dtype=torch.float64)  # noqa: E731
    q = channel_quantities(TorchOps(), t([4.0]), t([float(ex["gamma"])]), t([[float(v) for v in ex["g"]]]),
                           y=t([[float(v) for v in ex["y"]]]), beta=t([float(ex["beta"])]), eps=t([float(ex["eps"])]),
                           H=t([[[float(v) for v in row] for row in ex["H"]]]), lam=t([float(ex["lam"])]), matrices=MATRICES)
    return {k: q.values[k].numpy()[0] for k in NAMES}


def _exact(ex):
    r = lambda x: sp.Rational(x.numerator, x.denominator)  # noqa: E731
    q = channel_quantities(SympyOps(), sp.Integer(4), r(ex["gamma"]), sp.Matrix([r(v) for v in ex["g"]]),
                           y=sp.Matrix([r(v) for v in ex["y"]]), beta=r(ex["beta"]), eps=r(ex["eps"]),
                           H=sp.Matrix([[r(v) for v in row] for row in ex["H"]]), lam=r(ex["lam"]), matrices=MATRICES)
    return {k: np.array(sp.N(sp.Matrix(q.values[k]) if hasattr(q.values[k], "shape") else q.values[k], 30).tolist()
                        if hasattr(q.values[k], "shape") else float(sp.N(q.values[k], 30)), dtype=float).squeeze()
            for k in NAMES}


def _interval(ex):
    ops = IntervalOps()
    q = channel_quantities(ops, ops.number(4), ops.number(ex["gamma"]), ops.vector(ex["g"]), y=ops.vector(ex["y"]),
                           beta=ops.number(ex["beta"]), eps=ops.number(ex["eps"]), H=ops.matrix(ex["H"]),
                           lam=ops.number(ex["lam"]), matrices=MATRICES)
    return q.values


def test_numpy_torch_and_exact_back_ends_build_the_same_quantities():
    ex = _instance()
    exact = _exact(ex)
    for values in (_numpy(ex, NumpyOps()), _torch(ex)):
        for name in NAMES:
            np.testing.assert_allclose(values[name], exact[name], rtol=RTOL, atol=RTOL, err_msg=name)


def test_interval_back_end_encloses_the_exact_quantities():
    from mpmath import mp
    ex = _instance()
    r = lambda x: sp.Rational(x.numerator, x.denominator)  # noqa: E731
    exact = channel_quantities(SympyOps(), sp.Integer(4), r(ex["gamma"]), sp.Matrix([r(v) for v in ex["g"]]),
                               y=sp.Matrix([r(v) for v in ex["y"]]), beta=r(ex["beta"]), eps=r(ex["eps"]),
                               H=sp.Matrix([[r(v) for v in row] for row in ex["H"]]), lam=r(ex["lam"])).values
    enclosures = _interval(ex)
    with mp.workdps(80):
        for name in ("sigma", "H_frob", "H_gg", "H_vv", "hess_bn_vv", "gW_max", "gW_hat_max"):
            lo, hi = (mp.mpf(end) for end in enclosures[name]._mpi_)
            value = mp.mpf(str(sp.N(exact[name], 80)))
            assert lo <= value <= hi and hi - lo < mp.mpf(10) ** -50 * (1 + abs(value)), name


def test_measured_values_are_used_as_given_and_their_forms_follow():
    ex = _instance()
    ops = SympyOps()
    r = lambda x: sp.Rational(x.numerator, x.denominator)  # noqa: E731
    y, g = sp.Matrix([r(v) for v in ex["y"]]), sp.Matrix([r(v) for v in ex["g"]])
    H = sp.Matrix([[r(v) for v in row] for row in ex["H"]])
    marker = sp.Matrix([1, 2, 3, 4])
    q = channel_quantities(ops, sp.Integer(4), sp.Integer(1), g, y=y, eps=sp.Integer(0), H=H,
                           measured=dict(grad_y_bn=marker, hess_bn=sp.eye(4)))
    assert q.grad_y_bn == marker
    assert q.H_vv == (marker.T * H * marker)[0, 0]
    assert q.hess_bn_vv == 30                          # v^T I v of the measured Hessian


def test_unknown_names_and_a_missing_batch_are_refused():
    ops = SympyOps()
    with pytest.raises(ValueError, match="unknown quantities"):
        channel_quantities(ops, 2, 1, sp.Matrix([1, 2]), y=sp.Matrix([0, 1]), eps=0, measured=dict(grad=1))
    with pytest.raises(ValueError, match="needs the batch y or its statistics"):
        channel_quantities(ops, 2, 1, sp.Matrix([1, 2]))
    assert "grad_y_bn" in MEASURED
