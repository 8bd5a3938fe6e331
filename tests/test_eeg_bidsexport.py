"""The cleaned EEG as a BIDS EEG derivative that mne_bids reads without warnings."""

from __future__ import annotations

import json
import warnings

import mne
import numpy as np
import pandas as pd
import pytest

from bids_eeg2fmri.bids.derivatives import write_dataset_description, write_sidecar
from bids_eeg2fmri.eeg.bidsexport import write_preproc_eeg
from bids_eeg2fmri.eeg.pipeline import add_volume_annotations, volume_onsets_from_raw

mne_bids = pytest.importorskip("mne_bids")
REPORT = {"Filter": {"HighPass": 1.0, "LowPass": 30.0, "Method": "FIR", "Notch": [50.0]},
          "Reference": "average", "BadChannels": {"flat": ["Pz"], "noisy": []}}


def _raw():
    rng = np.random.default_rng(0)
    info = mne.create_info(["Fz", "Cz", "Pz", "ECG"], 250.0, ["eeg", "eeg", "eeg", "ecg"])
    raw = mne.io.RawArray(rng.standard_normal((4, 2500)) * 1e-5, info, verbose="error")
    raw.info["bads"] = ["Pz"]
    raw.info["line_freq"] = 50.0
    add_volume_annotations(raw, np.arange(0.5, 8.0, 2.0), 2.0)
    return raw


@pytest.mark.parametrize("fmt", [".vhdr", ".fif"])
def test_mne_bids_reads_the_cleaned_eeg_without_warnings(tmp_path, fmt):
    out = tmp_path / "out"
    write_dataset_description(out, [tmp_path])
    (out / "participants.tsv").write_text("participant_id\nsub-01\n")
    raw = _raw()
    dest = out / "sub-01" / "eeg" / f"sub-01_task-rest_desc-preproc_eeg{fmt}"
    dest.parent.mkdir(parents=True)
    path, fields = write_preproc_eeg(raw, dest, REPORT, volume_onsets_from_raw(raw), 3)
    write_sidecar(path, {"TaskName": "rest", **fields})
    side = json.loads(path.with_suffix(".json").read_text())
    assert side["SamplingFrequency"] == 250.0 and side["PowerLineFrequency"] == 50.0
    assert side["EEGReference"] == "average"
    assert side["SoftwareFilters"]["Bandpass"]["HighPass"] == 1.0
    chans = pd.read_csv(out / "sub-01/eeg/sub-01_task-rest_desc-preproc_channels.tsv", sep="\t")
    assert list(chans["status"]) == ["good", "good", "bad", "good"]
    assert chans["status_description"][2] == "flat signal"
    events = pd.read_csv(out / "sub-01/eeg/sub-01_task-rest_desc-preproc_events.tsv", sep="\t")
    np.testing.assert_allclose(events["onset"], np.arange(0.5, 8.0, 2.0))
    assert list(events["volume"]) == [3, 4, 5, 6]
    bp = mne_bids.BIDSPath(root=out, subject="01", task="rest", description="preproc",
                           datatype="eeg", suffix="eeg", extension=fmt)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        back = mne_bids.read_raw_bids(bp, verbose=False)
    assert back.info["bads"] == ["Pz"] and back.info["sfreq"] == 250.0
    assert back.info["line_freq"] == 50.0
    np.testing.assert_allclose(back.get_data(picks=["Fz"]), raw.get_data(picks=["Fz"]),
                               atol=1e-9)
    vol = [a["onset"] for a in back.annotations if a["description"] == "volume"]
    np.testing.assert_allclose(vol, np.arange(0.5, 8.0, 2.0), atol=1 / 250)
    assert not list(dest.parent.glob(".tmp-*"))


def test_output_format_option_is_checked_and_parsed(tmp_path):
    from bids_eeg2fmri.cli.parser import parse_args
    from bids_eeg2fmri.config import Config
    from bids_eeg2fmri.errors import UsageError

    assert Config.from_sources({}).eeg.eeg_output_format == "brainvision"
    with pytest.raises(UsageError, match="eeg_output_format"):
        Config.from_sources({"eeg_output_format": "edf"})
    with pytest.raises(UsageError, match="eeg-output-format"):
        parse_args([str(tmp_path), str(tmp_path / "o"), "participant", "--eeg-output-format", "edf"])
