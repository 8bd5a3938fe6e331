"""The typed configuration: layering of defaults, TOML file and command line; labels; checks."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bids_eeg2fmri.cli.parser import parse_args
from bids_eeg2fmri.config import Config, normalise_labels
from bids_eeg2fmri.errors import ExitCode, UsageError


def _config(argv: list[str]) -> Config:
    values, config_file = parse_args(argv)
    return Config.from_sources(values, config_file)


def test_defaults_without_file_or_flags():
    cfg = _config(["in", "out", "participant"])
    assert cfg.fmri.slice_time_ref == 0.5
    assert cfg.fmri.registration == "syn"
    assert cfg.fmri.hmc == "torch"
    assert _config(["in", "out", "participant", "--hmc", "ants"]).fmri.hmc == "ants"
    assert cfg.eeg.eeg_sfreq == 250.0
    assert cfg.execution.participant_label == []
    assert cfg.execution.bids_dir == Path("in")


def test_file_overrides_defaults_and_flags_override_file(tmp_path):
    toml = tmp_path / "settings.toml"
    toml.write_text('[fmri]\nregistration = "affine"\noutput_res = 3\n'
                    '[eeg]\neeg_h_freq = 40.0\n[execution]\nnprocs = 3\n')
    cfg = _config(["in", "out", "participant", "--config", str(toml), "--output-res", "1"])
    assert cfg.fmri.registration == "affine"          # from the file
    assert cfg.fmri.output_res == 1                   # flag beats file
    assert cfg.eeg.eeg_h_freq == 40.0                 # from the file
    assert cfg.execution.nprocs == 3
    assert cfg.fmri.slice_time_ref == 0.5             # default kept


def test_saved_toml_reads_back_equal(tmp_path):
    cfg = _config(["in", "out", "group", "--participant-label", "sub-01", "02", "--fwhm", "6",
                   "--dummy-scans", "2", "--no-notch"])
    saved = tmp_path / "config.toml"
    saved.write_text(cfg.to_toml())
    again = Config.from_sources({}, saved)
    assert again == cfg


@pytest.mark.parametrize("content, fragment", [
    ("[fmri]\nregistration = 'elastic'\n", "fmri.registration"),
    ("[fmri]\nhmc = 'mcflirt'\n", "fmri.hmc"),
    ("[fmri]\noutput_res = 'two'\n", "fmri.output_res"),
    ("[fmri]\nno_such_key = 1\n", "no_such_key"),
    ("[nonsense]\nx = 1\n", "nonsense"),
    ("[eeg]\neeg_sfreq = 40.0\n", "twice"),
    ("not toml = = =", "cannot read"),
])
def test_bad_config_file_is_a_usage_error(tmp_path, content, fragment):
    toml = tmp_path / "bad.toml"
    toml.write_text(content)
    with pytest.raises(UsageError) as err:
        _config(["in", "out", "participant", "--config", str(toml)])
    assert err.value.code == ExitCode.USAGE
    assert fragment in err.value.oneline()
    assert "\n" not in err.value.oneline()


def test_missing_config_file_names_it(tmp_path):
    with pytest.raises(UsageError, match="missing.toml"):
        _config(["in", "out", "participant", "--config", str(tmp_path / "missing.toml")])


@pytest.mark.parametrize("given_labels, expected", [
    (["01"], ["01"]), (["sub-01"], ["01"]), (["sub-01", "01", "02"], ["01", "02"]),
    (["sub-ABC1"], ["ABC1"]),
])
def test_participant_labels_are_normalised(given_labels, expected):
    cfg = _config(["in", "out", "participant", "--participant-label", *given_labels])
    assert cfg.execution.participant_label == expected


@pytest.mark.parametrize("bad", ["sub-", "01_02", "sub-0 1", ""])
def test_invalid_labels_are_refused(bad):
    with pytest.raises(UsageError):
        normalise_labels([bad], "sub")


@given(st.lists(st.text(alphabet="abcXYZ0123456789", min_size=1, max_size=6), max_size=5))
def test_label_normalisation_is_idempotent(labels):
    once = normalise_labels([f"sub-{label}" for label in labels], "sub")
    assert normalise_labels(once, "sub") == once
    assert set(once) == set(labels)


def test_session_and_task_labels_strip_their_prefixes():
    cfg = _config(["in", "out", "participant", "--session-label", "ses-pre", "--task-label",
                   "task-rest"])
    assert cfg.execution.session_label == ["pre"]
    assert cfg.execution.task_label == ["rest"]
