"""Every counterexample found, pinned in exact inputs (tests/strategies.PINNED and EARLIER), is
still a certified violation of its variant, and the exact form of a printed statement holds with
equality, certified exactly, on the counterexample of the printed form."""
import pytest

from numeric import certify
from tests import strategies as S
from theory import statements as registry
from theory.vocab import Relation, Setting, Verdict

BN = [(k, S.PINNED[k]) for k in sorted(S.PINNED)] + [(k, S.EARLIER[k]) for k in sorted(S.EARLIER)]
TOY = [(k, S.PINNED_TOY[k]) for k in sorted(S.PINNED_TOY)] + [(k, S.EARLIER_TOY[k]) for k in sorted(S.EARLIER_TOY)]


@pytest.mark.parametrize("key, inst", BN, ids=lambda x: f"{x[0]}/{x[1]}" if isinstance(x, tuple) else "")
def test_pinned_counterexample_is_certified_violated(key, inst):
    sid, variant = key
    assert S.certified_verdict(sid, variant, Setting.BN_CHANNEL, inst) is Verdict.VIOLATED


@pytest.mark.parametrize("key, inst", TOY, ids=lambda x: f"{x[0]}/{x[1]}" if isinstance(x, tuple) else "")
def test_pinned_toy_counterexample_is_certified_violated(key, inst):
    sid, variant = key
    assert S.certified_verdict(sid, variant, Setting.TOY_REGRESSION, inst) is Verdict.VIOLATED


@pytest.mark.parametrize("sid, printed, exact", [("thm-4.1", "printed", "exact"),
                                                 ("thm-4.4", "printed", "exact")])
def test_exact_form_holds_with_equality_on_the_counterexample_of_the_printed_form(sid, printed, exact):
    statement = registry.get(sid)
    assert Relation(statement.variant(exact).relation) is Relation.EQ
    for inst in (S.PINNED[(sid, printed)], S.EARLIER[(sid, printed)]):
        cert = certify.certify_bn(statement, statement.variant(exact), inst, exact_first=True)
        assert cert.verdict is Verdict.EQUALITY and cert.method == certify.EXACT


def test_every_registry_variant_has_its_own_search_property():
    import importlib
    import pkgutil
    import tests
    names = set()
    for mod in pkgutil.iter_modules(tests.__path__):
        if mod.name.startswith("test_search_") and mod.name != "test_search_pinned":
            names |= set(dir(importlib.import_module(f"tests.{mod.name}")))
    missing = [f"{s.id}/{v.name}" for s, v in registry.all_variants()
               if not any(n.startswith(f"test_{s.id}_{v.name}_".replace("-", "_").replace(".", "_")) for n in names)]
    assert not missing, f"no hypothesis search for: {', '.join(missing)}"


VIOLATED_BN = [("thm-4.1", "printed"), ("thm-4.1", "epsilon"), ("thm-4.2", "printed-part2"), ("thm-4.2", "epsilon"),
               ("obs-4.3", "epsilon-batch-std"), ("thm-4.4", "printed"), ("thm-4.4", "unsquared"),
               ("thm-4.4", "proof-eq17"), ("thm-4.4", "epsilon"), ("thm-c1", "printed"), ("thm-c1", "proof-eq58")]


@pytest.mark.parametrize("sid, variant", VIOLATED_BN, ids=lambda x: x)
def test_the_hypothesis_search_reaches_a_certified_violation_of_a_violated_variant(sid, variant):
    """The searches of tests/test_search_*.py can see what they look for: the strategy of each
    violated variant reaches a robust float violation within the search's budget (no pinned
    example), and exact re-evaluation certifies it."""
    inst = S.find_violation(sid, variant)
    assert S.certified_verdict(sid, variant, Setting.BN_CHANNEL, inst) is Verdict.VIOLATED


# Bounds that hold, and how close to their boundary (relative slack) the search must get.
HELD_BN = [("thm-4.1", "drop-correlation"), ("thm-4.2", "printed")]
NEAR_BOUNDARY = 1e-2


@pytest.mark.parametrize("sid, variant", HELD_BN, ids=lambda x: x)
def test_the_hypothesis_search_reaches_the_boundary_of_a_bound_that_holds(sid, variant):
    """A search that never comes near the boundary of a bound cannot see it fail: the strategy
    reaches an instance within NEAR_BOUNDARY relative slack, and it is not a certified violation."""
    inst = S.find_instance(sid, variant, lambda verdict, rel: verdict in (Verdict.HOLDS, Verdict.EQUALITY)
                           and abs(rel) < NEAR_BOUNDARY)
    assert S.certified_verdict(sid, variant, Setting.BN_CHANNEL, inst) is not Verdict.VIOLATED


def test_the_hypothesis_search_reaches_a_certified_violation_of_lemma_4_5():
    from hypothesis import find
    from tests.test_search_lemma_4_5 import _evaluate

    def violated(inst):
        verdict, rel = _evaluate("printed", inst)
        return verdict == Verdict.VIOLATED and rel < -S.ROBUST
    inst = find(S.toy_instances(), violated, settings=S.settings(S.SEARCH, max_examples=200))
    assert S.certified_verdict("lemma-4.5", "printed", Setting.TOY_REGRESSION, inst) is Verdict.VIOLATED
