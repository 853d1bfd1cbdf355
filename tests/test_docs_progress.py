"""theory.docs --check says on stderr what it is doing while it works (issue 13, item 13: it was
silent for a minute)."""
from theory import docs


def test_docs_check_reports_each_slow_step_on_stderr(capsys, monkeypatch):
    calls = []
    monkeypatch.setattr(docs, "symbolic_verdicts", lambda: calls.append("verdicts") or {})
    monkeypatch.setattr(docs, "statement_document", lambda s, verdicts: calls.append(s.id) or "")
    monkeypatch.setattr(docs, "index_document", lambda verdicts: "")
    monkeypatch.setattr(docs, "cache_document", lambda verdicts: "")
    code = docs.main(["--check"])
    err = capsys.readouterr().err.splitlines()
    progress = [line for line in err if line.startswith("docs: ")]
    assert code == 1                                    # every (empty) document differs from the committed one
    assert progress[0].startswith("docs: symbolic verdicts")
    assert [line.split()[1] for line in progress[1:]] == [s.id for s in docs.STATEMENTS]
    # each progress line comes before the step it announces
    assert calls == ["verdicts"] + [s.id for s in docs.STATEMENTS]
