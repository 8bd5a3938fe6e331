"""Bad BOLD input is refused with exit code 65 and the offending file named."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from bids_eeg2fmri.errors import DataError, ExitCode
from bids_eeg2fmri.fmri import stages

GOOD_META = {"RepetitionTime": 2.0, "SliceTiming": [0.0, 1.0, 0.5, 1.5]}


def _write(tmp_path, data, meta, name="sub-01_task-rest_bold.nii.gz"):
    path = tmp_path / name
    nib.save(nib.Nifti1Image(np.asarray(data, dtype=np.float32), np.diag([3.0, 3.0, 4.0, 1.0])), path)
    if meta is not None:
        (tmp_path / name.replace(".nii.gz", ".json")).write_text(json.dumps(meta))
    return path


def _series(n=12):
    rng = np.random.default_rng(0)
    return 500 + rng.normal(0, 5, (6, 6, 4, n))


def _assert_refused(path, tmp_path, match, **kwargs):
    with pytest.raises(DataError, match=match) as err:
        stages.prepare(path, tmp_path / "out.nii", **kwargs)
    assert err.value.code == ExitCode.DATA == 65
    assert str(path) in err.value.oneline()


def test_good_input_passes(tmp_path):
    path = _write(tmp_path, _series(), GOOD_META)
    info = stages.prepare(path, tmp_path / "out.nii", dummy_scans=0)
    assert info["n_volumes"] == 12 and info["slice_timing_corrected"]


def test_3d_image(tmp_path):
    _assert_refused(_write(tmp_path, _series()[..., 0], GOOD_META), tmp_path, "4-D")


def test_too_few_volumes_after_dummies(tmp_path):
    path = _write(tmp_path, _series(7), GOOD_META)
    _assert_refused(path, tmp_path, "at least 5", dummy_scans=3)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_voxels(tmp_path, bad):
    data = _series()
    data[2, 3, 1, 5] = bad
    _assert_refused(_write(tmp_path, data, GOOD_META), tmp_path, "NaN/Inf")


@pytest.mark.parametrize("meta, match", [
    ({"SliceTiming": [0, 1, 0.5, 1.5]}, "RepetitionTime is missing"),
    ({"RepetitionTime": 0, "SliceTiming": [0, 0, 0, 0]}, "positive"),
    ({"RepetitionTime": -2.0}, "positive"),
    ({"RepetitionTime": 2.0, "SliceTiming": [0.0, 1.0, 0.5]}, "3 entries"),
    ({"RepetitionTime": 2.0, "SliceTiming": [0.0, 1.0, 0.5, 2.0]}, r"\[0, RepetitionTime"),
    ({"RepetitionTime": 2.0, "SliceTiming": [-0.1, 1.0, 0.5, 1.5]}, r"\[0, RepetitionTime"),
])
def test_bad_metadata(tmp_path, meta, match):
    _assert_refused(_write(tmp_path, _series(), meta), tmp_path, match)


def test_metadata_given_by_caller_is_checked_too(tmp_path):
    path = _write(tmp_path, _series(), GOOD_META)
    _assert_refused(path, tmp_path, "positive", metadata={"RepetitionTime": -1})


def test_missing_slice_timing_skips_correction_with_warning(tmp_path, caplog):
    path = _write(tmp_path, _series(), {"RepetitionTime": 2.0})
    info = stages.prepare(path, tmp_path / "out.nii", dummy_scans=0)
    assert not info["slice_timing_corrected"]
    assert any("SliceTiming" in r.message for r in caplog.records)
