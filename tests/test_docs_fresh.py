"""Generated documents and the cached symbolic verdicts match what the code produces now."""
from theory import docs


def test_committed_docs_and_verdict_cache_are_fresh():
    stale = docs.stale_files()
    assert not stale, f"regenerate with `python -m theory.docs`: {stale}"
