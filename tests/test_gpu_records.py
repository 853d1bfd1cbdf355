"""gpu_check.records: whole-line appends, atomic rewrites, non-finite floats, truncation."""
import json
import os

import numpy as np
import pytest

from gpu_check import records


def test_non_finite_floats_are_written_as_strings_that_float_reads_back():
    line = records.dumps({"a": float("nan"), "b": np.float64("inf"), "c": [-np.inf, 1.5], "d": np.int64(3)})
    back = json.loads(line)
    assert back == {"a": "nan", "b": "inf", "c": ["-inf", 1.5], "d": 3}
    assert np.isnan(float(back["a"])) and float(back["c"][0]) == -np.inf


def test_an_atomic_rewrite_replaces_the_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "config.json"
    records.atomic_write_json(str(path), {"v": 1})
    records.atomic_write_json(str(path), {"v": 2})
    assert json.loads(path.read_text()) == {"v": 2}
    assert os.listdir(tmp_path) == ["config.json"]


def test_a_write_that_dies_before_the_rename_keeps_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "summary.json"
    records.atomic_write_json(str(path), {"v": 1})

    def die(src, dst):
        raise OSError("killed before rename")

    monkeypatch.setattr(records.os, "replace", die)
    with pytest.raises(OSError, match="killed before rename"):
        records.atomic_write_json(str(path), {"v": 2})
    assert json.loads(path.read_text()) == {"v": 1} and os.listdir(tmp_path) == ["summary.json"]


def test_truncation_returns_record_files_to_the_checkpointed_sizes(tmp_path):
    w = records.RecordWriter(str(tmp_path), ["m.jsonl"])
    w.write("m.jsonl", [{"step": 0}])
    sizes = w.sizes()
    w.write("m.jsonl", [{"step": 1}, {"step": 2}])
    w.close()
    records.truncate_records(str(tmp_path), sizes)
    assert records.read_jsonl(str(tmp_path / "m.jsonl")) == [{"step": 0}]


def test_truncation_refuses_a_file_shorter_than_the_checkpoint_saw(tmp_path):
    (tmp_path / "m.jsonl").write_text("")
    with pytest.raises(ValueError, match="fewer than the 10"):
        records.truncate_records(str(tmp_path), {"m.jsonl": 10})


def test_provenance_names_package_versions_and_a_git_revision_or_why_not():
    versions = records.package_versions()
    assert versions["torch"] and versions["numpy"] and versions["python"]
    rev = records.git_revision()
    assert "revision" in rev and ("dirty" in rev)
