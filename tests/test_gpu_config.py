"""gpu_check.config: presets are named instances of one frozen config; flags override fields."""
import dataclasses

import pytest

from gpu_check.config import (NORMS, PRESETS, ConfigError, DLNConfig, RunConfig, config_from_dict,
                              config_to_dict, preset, resume_mismatches, with_overrides)


def test_every_preset_is_a_frozen_run_config_named_after_itself():
    assert set(PRESETS) == {"smoke", "dln-paper", "vgg-cpu", "vgg-digits", "vgg-paper"}
    for name, config in PRESETS.items():
        assert isinstance(config, RunConfig) and config.preset == name
        with pytest.raises(dataclasses.FrozenInstanceError):
            config.steps = 1


def test_paper_presets_follow_appendix_a():
    dln = preset("dln-paper")
    assert dln.networks() == ("dln",)
    assert (dln.steps, dln.dln.depth, dln.dln.width, dln.dln.n_samples, dln.dln.lr) == (10_000, 25, 10, 1000, 1e-6)
    vgg = preset("vgg-paper")
    assert vgg.networks() == ("vgg",)
    assert (vgg.steps, vgg.vgg.batch_size, vgg.vgg.lr, vgg.vgg.n_train) == (15_000, 128, 0.1, 50_000)


def test_smoke_trains_both_networks():
    assert preset("smoke").networks() == ("dln", "vgg")


def test_flags_override_fields_and_none_keeps_the_preset_value():
    base = preset("smoke")
    c = with_overrides(base, norm="l2", steps=3, seed=None)
    assert (c.norm, c.steps, c.seed) == ("l2", 3, base.seed)
    assert base.norm == "bn"     # the preset itself is untouched


@pytest.mark.parametrize("field, value, words", [
    ("norm", "groupnorm", "unknown norm 'groupnorm'"),
    ("device", "tpu", "unknown device 'tpu'"),
    ("steps", 0, "steps = 0"),
    ("probe_every", -1, "probe_every = -1"),
    ("bn_eps", -1e-5, "bn_eps = -1e-05"),
])
def test_an_invalid_override_is_an_error_naming_the_value(field, value, words):
    with pytest.raises(ConfigError, match=words):
        with_overrides(preset("smoke"), **{field: value})


def test_an_unknown_preset_lists_the_valid_ones():
    with pytest.raises(ConfigError, match="unknown preset 'vgg-huge'.*smoke"):
        preset("vgg-huge")


def test_data_directory_is_refused_for_a_run_without_a_vgg():
    with pytest.raises(ConfigError, match="no VGG network"):
        with_overrides(preset("dln-paper"), data="/somewhere")


def test_config_round_trips_through_its_dict_form():
    for config in PRESETS.values():
        assert config_from_dict(config_to_dict(config)) == config


def test_resume_mismatch_names_each_differing_field_but_not_the_device():
    a = preset("smoke")
    b = with_overrides(a, seed=3, device="cpu", norm="l1")
    diffs = resume_mismatches(a, b)
    assert any(d.startswith("seed:") for d in diffs) and any(d.startswith("norm:") for d in diffs)
    assert not any(d.startswith("device:") for d in diffs)
    assert resume_mismatches(a, dataclasses.replace(a, dln=DLNConfig(depth=6, width=4, n_samples=64, lr=3e-4))) == []


def test_the_papers_six_normalisations_and_noise_without_batchnorm_are_offered():
    """Sections 2-3's six, and Section 2.1's standard network with the noise of Algorithm 1."""
    assert NORMS == ("none", "bn", "noisy-bn", "l1", "l2", "linf", "noisy-none")
