"""Every counterexample ever found, pinned in exact inputs (tests/strategies.PINNED), is still a
certified violation of its variant, and moving it onto the variant's scope makes it hold where
the registry says the exact form holds."""
import pytest

from tests import strategies as S
from theory import statements as registry


@pytest.mark.parametrize("key", sorted(S.PINNED), ids=lambda k: f"{k[0]}/{k[1]}")
def test_pinned_counterexample_is_certified_violated(key):
    sid, variant = key
    assert S.certified_verdict(sid, variant, "bn-channel", S.PINNED[key]) == "violated"


@pytest.mark.parametrize("key", sorted(S.PINNED_TOY), ids=lambda k: f"{k[0]}/{k[1]}")
def test_pinned_toy_counterexample_is_certified_violated(key):
    sid, variant = key
    assert S.certified_verdict(sid, variant, "toy-regression", S.PINNED_TOY[key]) == "violated"


@pytest.mark.parametrize("sid, printed, exact", [("thm-4.1", "printed", "exact"),
                                                 ("thm-4.4", "printed", "exact")])
def test_exact_form_holds_with_equality_on_the_counterexample_of_the_printed_form(sid, printed, exact):
    inst = S.PINNED[(sid, printed)]
    assert S.certified_verdict(sid, exact, "bn-channel", inst) in ("equality", "undecided")
    assert registry.get(sid).variant(exact).relation == "=="


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
