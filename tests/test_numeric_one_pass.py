"""numeric.one_pass: Theorem 4.2's forms of a dense quadratic head from one pass over H, against
the three-pass evaluation (theory.bn.hessian_bn_bilinear and ops.bilinear), in float64 and exactly."""
import numpy as np
import pytest
import sympy as sp

from numeric import native, one_pass
from numeric.quantities import STRUCTURED_OPS as OPS
from theory import bn
from theory.ops import SympyOps
from theory.vocab import rounding_tolerance


def draw(seed, n, m, eps_over_var=0.0, asymmetry=0.0):
    """n instances of a quadratic head: y, symmetric H (plus ``asymmetry`` times a random
    antisymmetric matrix), b, gamma, beta, eps = eps_over_var * Var(y)."""
    rng = np.random.default_rng([seed, n, m])
    y = rng.standard_normal((n, m)) * rng.uniform(0.1, 10, (n, 1)) + rng.standard_normal((n, 1))
    B = rng.standard_normal((n, m, m)) / np.sqrt(m)
    H = 0.5 * (B + np.swapaxes(B, 1, 2))
    A = rng.standard_normal((n, m, m)) / np.sqrt(m)
    H = H + asymmetry * 0.5 * (A - np.swapaxes(A, 1, 2))
    b = rng.standard_normal((n, m))
    gamma = rng.uniform(0.5, 2.0, n) * rng.choice([-1, 1], n)
    beta = rng.standard_normal(n)
    return y, H, b, gamma, beta, eps_over_var * y.var(axis=1)


def three_pass(y, H, b, gamma, beta, eps):
    """The reference: g = H z + b, then hessian_bn_bilinear (H(Pv)) and ops.bilinear (Hv)."""
    m = y.shape[1]
    _, sigma, y_hat = bn.batch_statistics(OPS, y, m, eps)
    z = OPS.scale(gamma, y_hat) + OPS.scale(beta, OPS.ones_like(y))
    g = OPS.matvec(H, z) + b
    v = bn.grad_y_bn(OPS, g, y_hat, sigma, gamma, m)
    return bn.hessian_bn_bilinear(OPS, H, g, y_hat, sigma, gamma, m, v, v), OPS.bilinear(H, v, v)


def magnitudes(y, H, b, gamma, beta, eps):
    """The magnitude of the terms each computed form is a sum of, for (hess_bn_vv, H_vv): every
    quantity evaluated with the absolute values of its terms.

    Both evaluations compute the same polynomial in the inputs (in different orders), through
    chains of at most ~2m + 20 roundings (inner products of length m, a sum over row blocks, the
    3 x 3 expansion); each is within (2m + 20) u times this magnitude of the exact value (Higham,
    gamma_n), so the two differ by at most 2 (2m + 20) u M <= 64 m u M = rounding_tolerance(m, M)
    for m >= 1.  The expansion of c^T K c sums terms of size k^2 |g|^T|H||g|: that is in M."""
    m = y.shape[1]
    _, sigma, y_hat = bn.batch_statistics(OPS, y, m, eps)
    absH, ay = np.abs(H), np.abs(y_hat)
    k = np.abs(gamma) / sigma
    gmag = OPS.matvec(absH, np.abs(gamma)[:, None] * ay + np.abs(beta)[:, None]) + np.abs(b)  # >= |g|
    c1, cy = k * gmag.sum(-1) / m, k * np.einsum("ni,ni->n", gmag, ay) / m                  # |c_1|, |c_y|
    vmag = k[:, None] * gmag + c1[:, None] + cy[:, None] * ay                               # >= |v|
    u_v = vmag
    u_Pv = vmag + (vmag.sum(-1) / m)[:, None] + (np.einsum("ni,ni->n", ay, vmag) / m)[:, None] * ay
    form = lambda u: np.einsum("ni,ni->n", u, OPS.matvec(absH, u))  # noqa: E731
    gy = np.einsum("ni,ni->n", gmag, ay)
    yv = np.einsum("ni,ni->n", ay, vmag)
    curvature = np.abs(gamma) / (m * sigma**2) * (
        2 * (np.einsum("ni,ni->n", gmag, vmag) + gmag.sum(-1) * vmag.sum(-1) / m) * yv
        + gy * (np.einsum("ni,ni->n", vmag, vmag) + vmag.sum(-1)**2 / m) + 3 * gy * yv**2 / m)
    return k**2 * form(u_Pv) + curvature, form(u_v)


def require_native():
    """The C kernel, where this machine can compile it; CI's machine can (its status is printed)."""
    if not native.status().startswith("native"):
        pytest.skip(native.status())


@pytest.mark.parametrize("m, row_block", [(3, 128), (5, 2), (32, 7), (130, 128), (300, 64)])
@pytest.mark.parametrize("eps_over_var", [0.0, 1e-5, 0.5])
@pytest.mark.parametrize("use_native", [False, True], ids=["numpy-pass", "native-pass"])
def test_one_pass_forms_equal_the_three_pass_forms_within_float64_rounding(m, row_block, eps_over_var, use_native):
    # several row blocks, m not a multiple of the block (5 = 2+2+1, 32 = 4*7+4, 130, 300), and a
    # cache budget that splits the instances into steps; the C kernel's vector step is 16 doubles,
    # so 3, 5 (tail only), 32 (no tail), 130 and 300 (a tail) cover its loop bounds
    if use_native:
        require_native()
    args = draw(1, 40, m, eps_over_var)
    ours = one_pass.quadratic_head_hessian_forms(*args, row_block=row_block, step_bytes=8 * row_block * m * 3,
                                                 native=use_native)
    reference = three_pass(*args)
    for name, a, ref, scale in zip(("hess_bn_vv", "H_vv"), ours, reference, magnitudes(*args)):
        tolerance = rounding_tolerance(m, scale)
        assert np.all(np.abs(a - ref) <= tolerance), \
            f"{name} at m = {m}: one pass and three passes differ by {np.max(np.abs(a - ref) / tolerance):.3g} tolerances"
        assert np.all(np.abs(ref) > tolerance)   # the forms are not lost in rounding: the test can fail


@pytest.mark.parametrize("m", [2, 3, 15, 16, 17, 31, 33, 64])
def test_the_native_and_numpy_passes_give_the_same_gram_within_float64_rounding(m):
    # every field of the pass, at m around the kernel's 16-double step, against the NumPy pass:
    # both compute the same sums in different orders (bounded like magnitudes(): 64 m u M)
    require_native()
    y, H, b, gamma, beta, _ = draw(4, 25, m)
    _, _, y_hat = bn.batch_statistics(OPS, y, m, 0.0)
    g_c, gram_c = one_pass.gram_one_pass(H, y_hat, b, gamma, beta, native=True)
    g_np, gram_np = one_pass.gram_one_pass(H, y_hat, b, gamma, beta, native=False)
    assert native.gram_pass(H, y_hat, b, gamma, beta) is not None      # the first really was native
    absH = np.abs(H)
    gmag = OPS.matvec(absH, np.abs(gamma)[:, None] * np.abs(y_hat) + np.abs(beta)[:, None]) + np.abs(b)
    assert np.all(np.abs(g_c - g_np) <= rounding_tolerance(m, gmag))
    scales = {"gg": np.einsum("ni,nij,nj->n", gmag, absH, gmag), "g1": np.einsum("ni,ni->n", absH.sum(-1), gmag),
              "gy": np.einsum("ni,nij,nj->n", gmag, absH, np.abs(y_hat)), "one_one": absH.sum((-1, -2)),
              "one_y": np.einsum("nij,nj->n", absH, np.abs(y_hat)),
              "yy": np.einsum("ni,nij,nj->n", np.abs(y_hat), absH, np.abs(y_hat))}
    for field, scale in scales.items():
        a, ref = getattr(gram_c, field), getattr(gram_np, field)
        assert np.all(np.abs(a - ref) <= rounding_tolerance(m, scale)), field
        assert not np.array_equal(ref, np.zeros_like(ref))


def test_the_native_pass_propagates_nan_and_inf_like_the_numpy_pass():
    require_native()
    y, H, b, gamma, beta, _ = draw(5, 4, 20)
    _, _, y_hat = bn.batch_statistics(OPS, y, 20, 0.0)
    H = H.copy()
    H[1, 3, 7] = H[1, 7, 3] = np.nan
    H[2, 0, 0] = np.inf
    b = b.copy()
    b[3, 19] = np.nan
    for native_pass in (True, False):
        with np.errstate(invalid="ignore"):       # inf * 0 in NumPy's product warns; C is silent
            g, gram = one_pass.gram_one_pass(H, y_hat, b, gamma, beta, native=native_pass)
        assert np.isfinite(gram.gg[0]) and not np.isfinite(gram.gg[1:]).any(), native_pass
        assert np.isnan(g[1]).any() and np.isnan(g[3, 19])


def test_views_and_other_dtypes_take_the_numpy_pass():
    # the kernel reads contiguous float64 memory; anything else returns None (the caller's NumPy
    # pass), never a copy that would read H a second time
    y, H, b, gamma, beta, _ = draw(6, 3, 8)
    _, _, y_hat = bn.batch_statistics(OPS, y, 8, 0.0)
    assert native.gram_pass(H.swapaxes(1, 2), y_hat, b, gamma, beta) is None
    assert native.gram_pass(H.astype(np.float32), y_hat, b, gamma, beta) is None
    assert native.gram_pass(H[:, ::2, ::2], y_hat[:, ::2], b[:, ::2], gamma, beta) is None


def test_without_a_working_compiler_the_status_says_numpy_and_why(monkeypatch, tmp_path):
    monkeypatch.setenv("CC", "false")            # a compiler that fails every build
    monkeypatch.setenv(native.CACHE_ENV, str(tmp_path))
    monkeypatch.setattr(native, "_compiler", lambda: "/bin/false")
    native._load.cache_clear()
    try:
        assert native.status().startswith("numpy: compiling numeric/native/gram_pass.c failed")
        y, H, b, gamma, beta, _ = draw(7, 3, 8)
        _, _, y_hat = bn.batch_statistics(OPS, y, 8, 0.0)
        assert native.gram_pass(H, y_hat, b, gamma, beta) is None
        assert list(tmp_path.iterdir()) == []     # no half-written library left behind
        monkeypatch.setenv(native.DISABLE_ENV, "0")
        native._load.cache_clear()
        assert native.status() == f"numpy: {native.DISABLE_ENV}=0"
    finally:
        native._load.cache_clear()


def test_a_library_built_for_one_cpu_is_never_loaded_on_another(monkeypatch, tmp_path):
    # -march=native code on a CPU without those instructions dies with SIGILL; a cache in a home
    # directory shared by a cluster's machines must key the library by the CPU it was built for
    require_native()
    monkeypatch.setenv(native.CACHE_ENV, str(tmp_path))
    built = []
    for cpu in ("cpu A: flags avx2", "cpu B: flags avx512f"):
        monkeypatch.setattr(native, "_cpu_identity", lambda cpu=cpu: cpu)
        native._load.cache_clear()
        try:
            assert native.status().startswith("native C")
        finally:
            native._load.cache_clear()
        built.append(sorted(p.name for p in tmp_path.iterdir()))
    assert len(built[0]) == 1 and len(built[1]) == 2 and built[0][0] in built[1]


def test_splitting_the_instances_into_steps_changes_no_bit():
    args = draw(2, 9, 40)
    whole = one_pass.quadratic_head_hessian_forms(*args, row_block=16)
    steps = one_pass.quadratic_head_hessian_forms(*args, row_block=16, step_bytes=8 * 16 * 40 * 2)  # 2 per step
    np.testing.assert_array_equal(whole[0], steps[0])
    np.testing.assert_array_equal(whole[1], steps[1])


def _exact_instance(m, eps_kind):
    """y with a rational sigma: eps = 0 with a perfect-square variance, or eps > 0 topping the
    variance up to a square."""
    y = [sp.Integer(v) for v in (0, 0, 0, 0, 5)[:m]] if m == 5 else [sp.Integer(v) for v in (0, 0, 2, 2)]
    mean = sum(y) / m
    var = sum((v - mean)**2 for v in y) / m
    eps = sp.Integer(0) if eps_kind == "zero" else (sp.sqrt(var).ceiling() + sp.Rational(1, 3))**2 - var
    assert sp.sqrt(var + eps).is_Rational
    rng = np.random.default_rng(m)
    entries = rng.integers(-9, 10, (m, m))
    H = sp.Matrix(m, m, lambda i, j: sp.Rational(int(entries[min(i, j), max(i, j)]), 4))   # symmetric
    b = sp.Matrix([sp.Rational(int(x), 3) for x in rng.integers(-9, 10, m)])
    return sp.Matrix(y), H, b, sp.Rational(3, 2), sp.Rational(-2, 7), eps


@pytest.mark.parametrize("m", [4, 5])
@pytest.mark.parametrize("eps_kind", ["zero", "positive"])
def test_one_pass_forms_are_exactly_the_three_pass_forms_in_rational_arithmetic(m, eps_kind):
    y, H, b, gamma, beta, eps = _exact_instance(m, eps_kind)
    ops = SympyOps()
    _, sigma, y_hat = bn.batch_statistics(ops, y, m, eps)
    z = gamma * y_hat + beta * ops.ones_like(y)
    g = H * z + b
    v = bn.grad_y_bn(ops, g, y_hat, sigma, gamma, m)
    reference = (bn.hessian_bn_bilinear(ops, H, g, y_hat, sigma, gamma, m, v, v), ops.bilinear(H, v, v))
    # the same pass over object arrays of SymPy rationals: row blocks of 2 (m = 5: 2 + 2 + 1)
    obj = lambda M: np.array(M.tolist(), dtype=object)  # noqa: E731
    g_pass, gram = one_pass.gram_one_pass(obj(H)[None], obj(y_hat.T), obj(b.T), np.array([gamma], dtype=object),
                                          np.array([beta], dtype=object), row_block=2)
    assert sp.Matrix(list(g_pass[0])) == g
    gram = bn.SpanGram(*(field[0] for field in (gram.gg, gram.g1, gram.gy, gram.one_one, gram.one_y, gram.yy)))
    ours = bn.hessian_forms_from_gram(ops, gram, g, y_hat, sigma, gamma, m)
    assert all(r.is_Rational and r != 0 for r in reference)
    assert tuple(ours) == tuple(reference)


def test_an_asymmetric_H_gives_a_different_answer_as_documented():
    # The precondition: H symmetric.  A non-symmetric H is not refused (checking would read it a
    # second time); its forms come out different from the three-pass evaluation, by far more
    # than rounding.
    args = draw(3, 20, 50, asymmetry=0.5)
    ours = one_pass.quadratic_head_hessian_forms(*args, row_block=16)
    reference = three_pass(*args)
    for a, ref, scale in zip(ours, reference, magnitudes(*args)):
        assert np.all(np.abs(a - ref) > rounding_tolerance(50, scale))
