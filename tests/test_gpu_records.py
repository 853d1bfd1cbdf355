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


def test_every_new_run_directory_records_its_format_version_and_git_revision(tmp_path):
    from gpu_check.config import preset, with_overrides
    from gpu_check.train import run_training

    run_training(with_overrides(preset("smoke"), steps=2, probe_every=2), str(tmp_path), progress=False)
    meta = json.loads((tmp_path / records.CONFIG).read_text())
    assert meta["format_version"] == records.FORMAT_VERSION and records.format_version(meta) == 2
    assert "revision" in meta["git"] and "dirty" in meta["git"]
    assert [n["name"] for n in meta["models"]["dln"]["normalisations"]] == \
        [f"layers.{i}.norm" for i in range(5)]          # named_modules names; records say 'dln/fc01' ...


def test_a_run_directory_of_format_version_1_reads_unchanged(tmp_path):
    """Runs written before format_version existed: the report and the figures read them as before."""
    import io

    from gpu_check import plots
    from gpu_check.config import preset, with_overrides
    from gpu_check.train import run_training
    from theory import report

    run_training(with_overrides(preset("smoke"), steps=2, probe_every=2), str(tmp_path), progress=False)
    meta = json.loads((tmp_path / records.CONFIG).read_text())
    old = {k: v for k, v in meta.items() if k not in ("format_version", "models")}   # a version-1 config.json
    (tmp_path / records.CONFIG).write_text(json.dumps(old))
    assert records.format_version(old) == 1
    out = io.StringIO()
    assert report.run(["--trajectory", str(tmp_path), "--format", "json"], stdout=out, stderr=io.StringIO()) == 0
    rows = json.loads(out.getvalue())["rows"]
    assert {r["layer"] for r in rows} >= {"dln/fc01", "vgg/conv01"}
    assert plots.main([str(tmp_path), "--out", str(tmp_path / "figs")]) == 0


def test_a_format_version_newer_than_the_code_is_refused_by_name():
    with pytest.raises(ValueError, match="format_version 99"):
        records.format_version({"format_version": 99})
