"""Volume markers as real acquisition and export software write them, read through ``read_eeg``.

Files are written with the vendor formats of ``tests/reallayouts`` (Recorder 1.0, Analyzer 2.0
exports, EEGLAB via eeglabio) inside small BIDS trees, so the whole path from file to volume
onsets is exercised, including mne-bids replacing annotations with an inherited events.tsv.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import mne
import numpy as np
import pytest
from reallayouts.common import Marker, synth_eeg, volume_markers, write_brainvision

from bids_eeg2fmri.eeg.io import read_eeg
from bids_eeg2fmri.eeg.triggers import find_volume_onsets, find_volume_onsets_raw
from bids_eeg2fmri.errors import DataError

SFREQ = 500.0
TR = 2.0
N_VOL = 12
CHANNELS = ["Fp1", "Fz", "Cz", "Pz", "O1", "O2", "ECG"]


def _tree(root: Path, task: str = "rest") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "dataset_description.json").write_text(json.dumps({"Name": "x", "BIDSVersion": "1.2.0"}))
    return root / "sub-01" / "eeg" / f"sub-01_task-{task}_eeg.vhdr"


def _write(vhdr: Path, markers: list[Marker], vendor: str = "recorder") -> np.ndarray:
    first = int(3 * SFREQ)
    samples, _ = volume_markers(first, N_VOL, TR * SFREQ)
    n_times = first + int((N_VOL * TR + 2) * SFREQ)
    data, _ = synth_eeg(len(CHANNELS) - 1, n_times, SFREQ, volume_samples=None, seed=1)
    write_brainvision(vhdr, data, SFREQ, CHANNELS, markers, vendor=vendor,
                      data_ext=".eeg" if vendor == "recorder" else ".dat")
    return samples


def _mne_recording(tmp_path: Path, ext: str, seed: int, first_samp: int = 0
                   ) -> tuple[Path, mne.io.RawArray]:
    """Where a non-BrainVision recording goes in a fresh tree, and its data (no markers yet)."""
    root = tmp_path / "ds"
    _tree(root)
    path = root / "sub-01" / "eeg" / f"sub-01_task-rest_eeg{ext}"
    path.parent.mkdir(parents=True, exist_ok=True)
    n_times = int((N_VOL * TR + 5) * SFREQ)
    data, _ = synth_eeg(len(CHANNELS) - 1, n_times, SFREQ, volume_samples=None, seed=seed)
    info = mne.create_info(CHANNELS, SFREQ, ["eeg"] * (len(CHANNELS) - 1) + ["ecg"])
    return path, mne.io.RawArray(data * 1e-6, info, first_samp=first_samp, verbose="error")


def _onsets(vhdr: Path, **kw):
    raw = read_eeg(vhdr)
    return find_volume_onsets_raw(raw, tr=TR, n_volumes=N_VOL, marker="auto", path=vhdr, **kw)


def test_analyzer_export_scan_start_is_the_volume_marker(tmp_path):
    vhdr = _tree(tmp_path)
    samples, _ = volume_markers(int(3 * SFREQ), N_VOL, TR * SFREQ)
    markers = [Marker("Scanner", "Scan Start", int(s)) for s in samples]
    markers.append(Marker("Scanner Start", "", int(samples[0])))
    # per-slice markers: 20 per TR
    markers += [Marker("Scanner", "s ", int(s + k * TR * SFREQ / 20)) for s in samples
                for k in range(20)]
    truth = _write(vhdr, markers, vendor="analyzer")
    assert vhdr.read_text().startswith("Brain Vision Data Exchange Header File Version 2.0")
    assert "IEEE_FLOAT_32" in vhdr.read_text()
    raw = read_eeg(vhdr)
    # the start and slice markers were read, and are not taken for volumes
    assert {"Scanner Start/", "Scanner/s "} <= set(raw.annotations.description)
    got = find_volume_onsets_raw(raw, tr=TR, n_volumes=N_VOL, path=vhdr)
    assert got.marker == "Scanner/Scan Start"
    np.testing.assert_array_equal(got.samples, truth)


def test_sync_on_pulses_spaced_by_the_tr_are_never_volumes(tmp_path):
    vhdr = _tree(tmp_path)
    samples, vols = volume_markers(int(3 * SFREQ), N_VOL, TR * SFREQ)
    # Same count and spacing as the volumes, earlier in time: only the name tells them apart.
    sync = [Marker("SyncStatus", "Sync On", int(s - 0.3 * SFREQ)) for s in samples]
    truth = _write(vhdr, vols + sync)
    got = _onsets(vhdr)
    assert got.marker == "Response/R128"
    np.testing.assert_array_equal(got.samples, truth)
    vhdr2 = _tree(tmp_path / "b")
    _write(vhdr2, sync)
    with pytest.raises(DataError, match="no volume markers"):
        _onsets(vhdr2)


def test_inherited_events_tsv_does_not_hide_the_recordings_markers(tmp_path):
    vhdr = _tree(tmp_path, task="MIpre")
    samples, vols = volume_markers(int(3 * SFREQ), N_VOL, TR * SFREQ)
    truth = _write(vhdr, vols + [Marker("Stimulus", "S 99", int(samples[1]))])
    # A task-level events.tsv with paradigm blocks only, as ds002338 publishes.
    (tmp_path / "task-MIpre_events.tsv").write_text(
        "onset\tduration\ttrial_type\n2\t20\tRest\n22\t20\tTask-MI\n")
    raw = read_eeg(vhdr)
    assert {"Rest", "Task-MI"} <= set(raw.annotations.description)  # events.tsv was read
    got = find_volume_onsets_raw(raw, tr=TR, n_volumes=N_VOL, path=vhdr)
    assert got.marker == "Response/R128"
    np.testing.assert_array_equal(got.samples, truth)


@pytest.mark.parametrize("etype", ["R128", "TR", "V", "128"])
def test_eeglab_event_types(tmp_path, etype):
    path, raw = _mne_recording(tmp_path, ".set", seed=2)
    onsets = 3.0 + np.arange(N_VOL) * TR
    # stimulus codes at irregular times compete with the volume type
    stim = np.sort(np.random.default_rng(0).uniform(1, N_VOL * TR, 9))
    raw.set_annotations(mne.Annotations(np.r_[onsets, stim], 0.0, [etype] * N_VOL + ["1"] * 9))
    mne.export.export_raw(path, raw, fmt="eeglab", verbose="error")
    got = find_volume_onsets_raw(read_eeg(path), tr=TR, n_volumes=N_VOL, path=path)
    assert got.marker == etype
    np.testing.assert_array_equal(got.samples, np.round(onsets * SFREQ).astype(int))


def test_among_tr_spaced_candidates_the_count_decides(caplog):
    truth = np.round((3 + np.arange(N_VOL) * TR) * SFREQ).astype(int)
    half = truth[: N_VOL // 2]
    # alphabetical order (or equal spacing) would pick R128: only the count says TR
    desc = ["R128"] * len(half) + ["TR"] * N_VOL
    onsets = np.r_[half, truth] / SFREQ
    with caplog.at_level(logging.INFO, logger="bids_eeg2fmri.eeg"):
        got = find_volume_onsets(np.array(desc, dtype=object), onsets, sfreq=SFREQ,
                                 n_times=int((N_VOL * TR + 6) * SFREQ), tr=TR, n_volumes=N_VOL,
                                 path="x.vhdr")
    assert got.marker == "TR"
    assert any("'TR' chosen" in r.getMessage() and "'R128'" in r.getMessage()
               for r in caplog.records)


def test_task_level_channels_tsv_applies_and_its_types_win_over_names(tmp_path):
    vhdr = _tree(tmp_path)
    _, vols = volume_markers(int(3 * SFREQ), N_VOL, TR * SFREQ)
    _write(vhdr, vols)
    rows = [f"{n}\tEEG\tuV\tgood" for n in CHANNELS[:-1]] + ["ECG\tMISC\tuV\tgood"]
    rows[4] = rows[4].replace("good", "bad")
    # well-formed but at the top of the tree: mne-bids does not look there
    (tmp_path / "task-rest_channels.tsv").write_text(
        "name\ttype\tunits\tstatus\n" + "\n".join(rows) + "\n")
    raw = read_eeg(vhdr)
    assert raw.get_channel_types(picks=["ECG"]) == ["misc"]  # not retyped ECG by its name
    assert raw.info["bads"] == [CHANNELS[4]]


@pytest.mark.parametrize("meas_date", [None, "2017-06-08"])
def test_recording_markers_keep_their_time_with_a_first_sample_offset(tmp_path, meas_date):
    # FIF recordings may start at a sample other than 0; with or without a measurement date the
    # markers put back beside events.tsv must land on the same samples.
    from datetime import datetime, timezone

    path, raw = _mne_recording(tmp_path, ".fif", seed=3, first_samp=1234)
    root = path.parents[2]
    if meas_date:
        raw.set_meas_date(datetime.fromisoformat(meas_date).replace(tzinfo=timezone.utc))
    rel = 3.0 + np.arange(N_VOL) * TR  # seconds from the first sample
    # without a measurement date MNE takes these onsets as relative to the first sample
    raw.set_annotations(mne.Annotations(rel + (raw.first_time if meas_date else 0.0), 0.0,
                                        ["R128"] * N_VOL, orig_time=raw.info["meas_date"]))
    assert np.allclose(raw.annotations.onset - raw.first_time, rel)
    raw.save(path, verbose="error")
    (root / "task-rest_events.tsv").write_text("onset\tduration\ttrial_type\n1\t20\tRest\n")
    back = read_eeg(path)
    assert "Rest" in back.annotations.description  # events.tsv replaced the annotations
    got = find_volume_onsets_raw(back, tr=TR, n_volumes=N_VOL, path=path)
    assert got.marker == "R128"
    np.testing.assert_array_equal(got.samples, np.round(rel * SFREQ).astype(int))
