"""numeric.families: reproducible from a seed, covering the ranges it documents, and the
relative-norm group meeting its hypothesis; docs/instance-families.md is not stale."""
from pathlib import Path

import numpy as np
import pytest

from numeric import families
from numeric.hessians import DiagLowRank
from theory import statements as registry
from theory.evaluate import evaluate_variant

ROOT = Path(__file__).resolve().parent.parent


def _same(a, b):
    if isinstance(a, DiagLowRank):
        return all(np.array_equal(x, y) for x, y in ((a.diag, b.diag), (a.U, b.U), (a.s, b.s)))
    return np.array_equal(a, b)


@pytest.mark.parametrize("group, head, m", [("free-eps0", "softmax-ce", 5), ("free-eps", "mlp", 128),
                                            ("relative-norm-eps0", "quadratic-psd", 8)])
def test_same_seed_gives_the_same_instances_and_another_seed_does_not(group, head, m):
    a, b = families.sample_chunk(3, group, head, m, 40), families.sample_chunk(3, group, head, m, 40)
    c = families.sample_chunk(4, group, head, m, 40)
    for name in ("y", "g", "gamma", "beta", "eps", "lam", "H"):
        assert _same(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.y, c.y)


def test_plan_covers_every_batch_size_group_and_head_with_enough_instances():
    specs = families.plan(1000)
    assert {s.m for s in specs} == set(families.M_GRID)
    assert {s.group for s in specs} == set(families.GROUPS) and {s.head for s in specs} == set(families.HEADS)
    for group in families.GROUPS:
        assert sum(s.n for s in specs if s.group == group and s.m <= 64) >= 1000


def test_chunks_span_the_documented_scales_and_signs():
    chunk = families.merge_chunks([families.sample_chunk(0, "free-eps0", h, 6, 400) for h in families.HEADS])
    assert (chunk.gamma < 0).any() and (chunk.gamma > 0).any() and (chunk.beta < 0).any() and (chunk.beta > 0).any()
    spread = np.ptp(chunk.y, axis=1)
    assert spread.min() < 1e-2 and spread.max() > 1e2
    assert set(np.unique(chunk.y_kind)) == set(range(len(families.Y_KINDS)))
    assert set(np.unique(chunk.g_mode[chunk.g_mode >= 0])) == set(range(len(families.G_MODES)))


def test_relative_norm_group_meets_theorem_4_2s_hypothesis():
    s = registry.get("thm-4.2")
    chunk = families.merge_chunks([families.sample_chunk(0, "relative-norm-eps0", h, 5, 200)
                                   for h in ("quadratic-psd", "quadratic-indefinite", "squared-error")])
    r = evaluate_variant(s, s.variant("part2-exact"), chunk.quantities())
    assert r.applicable.mean() > 0.95


def test_free_group_does_not_meet_it_by_construction():
    s = registry.get("thm-4.2")
    chunk = families.sample_chunk(0, "free-eps0", "quadratic-indefinite", 5, 200)
    r = evaluate_variant(s, s.variant("part2-exact"), chunk.quantities())
    assert r.applicable.mean() < 0.2


def test_relative_norm_shift_makes_the_rayleigh_quotients_equal():
    rng = np.random.default_rng(0)
    H, g, v = rng.standard_normal((3, 4, 4)), rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    H = H + np.swapaxes(H, 1, 2)
    H2, ok = families.preserve_relative_norms(H, g, v)
    rq = lambda M, x: np.einsum("ni,nij,nj->n", x, M, x) / np.einsum("ni,ni->n", x, x)  # noqa: E731
    assert ok.all()
    np.testing.assert_allclose(rq(H2, v), rq(H2, g), rtol=1e-10)
    assert not np.allclose(rq(H, v), rq(H, g))


def test_bad_chunk_requests_name_the_problem():
    with pytest.raises(ValueError, match="unknown group"):
        families.sample_chunk(0, "nope", "mlp", 4, 3)
    with pytest.raises(ValueError, match="m >= 2"):
        families.sample_chunk(0, "free-eps0", "mlp", 1, 3)
    with pytest.raises(ValueError, match="unknown loss head"):
        families.sample_chunk(0, "free-eps0", "nope", 4, 3)


def test_instance_families_document_is_fresh():
    committed = (ROOT / "docs" / "instance-families.md").read_text()
    assert committed == families.markdown() + "\n", "regenerate: python -m numeric.families --doc docs/instance-families.md"
