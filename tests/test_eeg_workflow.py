"""The whole EEG path on real EEG (EEGLAB sample wrapped in BIDS, volume markers every 2 s)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import mne
import numpy as np
import pandas as pd
import pytest
from scipy import signal

from bids_eeg2fmri.config import Config
from bids_eeg2fmri.eeg import io as eeg_io
from bids_eeg2fmri.config import EEGConfig
from bids_eeg2fmri.eeg.pipeline import clean_eeg, spectral_features
from bids_eeg2fmri.errors import DataError, UsageError

TR = 2.0
FIRST = 5.0
N_VOL = 110  # 5 s .. 225 s of the 238 s recording
BANDS = {"delta": [1.0, 4.0], "theta": [4.0, 8.0], "alpha": [8.0, 13.0], "beta": [13.0, 30.0]}


@pytest.fixture(scope="module")
def eeglab_bids(tmp_path_factory, realdata) -> Path:
    """The EEGLAB tutorial recording as a BIDS dataset, with an R128 marker every 2 s."""
    import mne_bids

    src = realdata / "eeg" / "eeglab" / "eeglab_data.set"
    raw = mne.io.read_raw_eeglab(src, preload=False, verbose=False)
    raw.info["line_freq"] = 60.0
    raw.set_annotations(raw.annotations + mne.Annotations(
        FIRST + np.arange(N_VOL) * TR, 0.0, "R128", orig_time=raw.annotations.orig_time))
    root = tmp_path_factory.mktemp("eeglab_bids")
    bp = mne_bids.BIDSPath(subject="01", task="rest", root=root, datatype="eeg")
    mne_bids.write_raw_bids(raw, bp, allow_preload=False, overwrite=True, verbose=False)
    return root


def _eeg_file(root: Path) -> Path:
    return root / "sub-01" / "eeg" / "sub-01_task-rest_eeg.set"


def test_real_eeglab_band_power_matches_independent_welch(eeglab_bids, tmp_path):
    path = _eeg_file(eeglab_bids)
    opts = EEGConfig()
    res = clean_eeg(path, opts, tr=TR, n_volumes=N_VOL)
    # markers found exactly where they were put (128 Hz: 2 s = 256 samples)
    np.testing.assert_array_equal(res.provenance["VolumeOnsetSamples"],
                                  np.round((FIRST + np.arange(N_VOL) * TR) * 128).astype(int))
    assert res.provenance["GradientCorrection"]["method"] == "none"  # no MR artifact here
    assert res.provenance["GradientCorrection"]["detected"] is False
    assert res.provenance["BCGCorrection"]["method"] == "none"  # no ECG channel
    assert res.raw.info["sfreq"] == 250.0
    feats = spectral_features(res.raw, res.onsets, TR, opts)
    assert feats.bandpower.shape == (N_VOL, 32 * 4)
    assert feats.spectrogram.shape == (N_VOL, 32, 31, 3)  # 0..30 Hz at 1 Hz, 3 frames of 1 s

    # independent estimate: save/reload the FIF, cut [onset, onset + TR) from the annotations
    fif = tmp_path / "x_eeg.fif"
    res.raw.save(fif, verbose=False)
    back = mne.io.read_raw_fif(fif, preload=True, verbose=False)
    ev, ids = mne.events_from_annotations(back, event_id={"bold_volume": 1}, verbose=False)
    assert len(ev) == N_VOL
    x = back.get_data(picks="eeg") * 1e6
    starts = ev[:, 0] - back.first_samp
    segs = np.stack([x[:, s:s + 500] for s in starts])
    for detrend, rtol in ((False, 1e-6), ("constant", None)):
        f, p = signal.welch(segs, fs=250.0, window="hann", nperseg=250, noverlap=125,
                            detrend=detrend, axis=-1)
        for b, (lo, hi) in enumerate(BANDS.values()):
            sel = (f >= lo) & (f < hi)
            ref = p[..., sel].sum(axis=-1) * (f[1] - f[0])
            got = feats.bandpower[:, b::4]
            if rtol is not None:
                # same definition (Hann, 1 s, 50 %, no detrend): equal to 1e-6 relative
                np.testing.assert_allclose(got, ref, rtol=rtol)
            else:
                # scipy default per-frame mean removal: still within 10 % (median over
                # volumes x channels), 1 Hz high-pass leaves little offset in a 1 s frame
                rel = np.median(np.abs(got - ref) / ref)
                assert rel < 0.10, (lo, hi, rel)


def run_eeg_workflow(root: Path, tmp_path: Path, **options) -> Path:
    """Run the EEG workflow on the tutorial recording with ``options``; return the output dir."""
    from bids_eeg2fmri.workflows.eeg import init_eeg_preproc_wf

    out = tmp_path / "out"
    config = Config.from_sources({"output_dir": str(out), "bids_dir": str(root), **options})
    wf = init_eeg_preproc_wf(config=config, metadata={"RepetitionTime": TR,
                                                      "NumberOfVolumes": N_VOL,
                                                      "PowerLineFrequency": 60})
    wf.base_dir = str(tmp_path / "work")
    wf.inputs.inputnode.eeg_file = str(_eeg_file(root))
    wf.run()
    return out


def test_workflow_writes_the_three_derivatives(eeglab_bids, tmp_path):
    out = run_eeg_workflow(eeglab_bids, tmp_path, stft_scale="magnitude")
    eeg_dir = out / "sub-01" / "eeg"
    fif = eeg_dir / "sub-01_task-rest_desc-preproc_eeg.vhdr"
    h5 = eeg_dir / "sub-01_task-rest_desc-stft_spectrogram.h5"
    tsv = eeg_dir / "sub-01_task-rest_desc-bandpower_timeseries.tsv"
    for f in (fif, h5, tsv):
        assert f.exists() and f.with_name(f.name.split(".")[0] + ".json").exists(), f
    raw = mne.io.read_raw_brainvision(fif, verbose=False)
    assert raw.info["sfreq"] == 250.0
    assert sum(d.endswith("bold_volume") for d in raw.annotations.description) == N_VOL
    events = pd.read_csv(eeg_dir / "sub-01_task-rest_desc-preproc_events.tsv", sep="\t")
    assert len(events) == N_VOL and list(events["volume"]) == list(range(N_VOL))
    chans = pd.read_csv(eeg_dir / "sub-01_task-rest_desc-preproc_channels.tsv", sep="\t")
    assert list(chans["name"]) == raw.ch_names and set(chans["status"]) <= {"good", "bad"}
    side = json.loads(fif.with_suffix(".json").read_text())
    assert side["SamplingFrequency"] == 250.0 and side["EEGReference"] == "average"
    assert side["SoftwareFilters"]["Bandpass"]["LowPass"] == 30.0
    with h5py.File(h5) as f:
        spec = f["spectrogram"][()]
        assert spec.shape == (N_VOL, 32, 31, 3)
        assert list(f["spectrogram"].attrs["axes"]) == ["volume", "channel", "frequency", "frame"]
        assert f["frequencies"][-1] == 30.0 and f["volume_indices"][-1] == N_VOL - 1
        chans = [c.decode() if isinstance(c, bytes) else c for c in f["channels"][()]]
    meta = json.loads(h5.with_suffix(".json").read_text())
    assert meta["Units"] == "uV" and meta["Channels"] == chans and len(meta["VolumeOnsets"]) == N_VOL
    assert meta["STFT"]["WindowSamples"] == 250 and meta["Filter"]["Notch"] == [60.0, 120.0]
    table = pd.read_csv(tsv, sep="\t")
    assert table.shape == (N_VOL, 32 * 4) and table.columns[0] == f"{chans[0]}_delta"
    assert (table.to_numpy() > 0).all()
    tmeta = json.loads(tsv.with_suffix(".json").read_text())
    assert tmeta[f"{chans[0]}_alpha"]["Units"] == "uV^2"


def test_bad_inputs_exit_65_naming_the_file(eeglab_bids, tmp_path):
    path = _eeg_file(eeglab_bids)
    # 110 markers for 300 volumes, with recording left before and after them: which volumes?
    with pytest.raises(DataError, match="which volumes they belong to is unknown") as exc:
        clean_eeg(path, EEGConfig(), tr=TR, n_volumes=300)
    assert exc.value.code == 65 and str(path) in str(exc.value)
    # marker spacing far from TR
    with pytest.raises(DataError, match="far from the BOLD RepetitionTime 3") as exc:
        clean_eeg(path, EEGConfig(), tr=3.0, n_volumes=70)
    assert str(path) in str(exc.value)
    # sampling rate (128 Hz) below twice the requested high cut-off
    with pytest.raises(DataError, match="below twice") as exc:
        clean_eeg(path, EEGConfig(eeg_h_freq=70.0, eeg_sfreq=250.0), tr=TR, n_volumes=N_VOL)
    assert str(path) in str(exc.value)
    # no ECG with --bcg-correction obs
    with pytest.raises(DataError, match="needs an ECG channel") as exc:
        clean_eeg(path, EEGConfig(bcg_correction="obs"), tr=TR, n_volumes=N_VOL)
    assert str(path) in str(exc.value)
    # no volume markers and no --assume-eeg-bold-sync
    with pytest.raises(DataError, match="no volume markers") as exc:
        clean_eeg(path, EEGConfig(volume_marker="Scan Start"), tr=TR, n_volumes=N_VOL)
    assert exc.value.code == 65 and str(path) in str(exc.value)
    # unreadable file
    broken = tmp_path / "sub-01" / "eeg" / "sub-01_task-rest_eeg.set"
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"not a MATLAB file")
    with pytest.raises(DataError, match="cannot read EEG") as exc:
        eeg_io.read_eeg(broken)
    assert str(broken) in str(exc.value)
    # bad option values are usage errors (exit 64) as soon as the configuration is built
    for bad in ({"stft_scale": "dB"}, {"stft_taper": "no-such-window"}, {"stft_context": -1},
                {"min_eeg_coverage": 0.0}, {"min_eeg_coverage": 1.5}):
        with pytest.raises(UsageError, match=next(iter(bad))) as err:
            Config.from_sources({"output_dir": str(tmp_path), **bad})
        assert err.value.code == 64


def test_eeg_derivatives_are_matched_and_artifact_steps_default_off(eeglab_bids, tmp_path):
    deriv = tmp_path / "derivatives" / "eeg_pp"
    shutil.copytree(eeglab_bids, deriv)
    for f in (deriv / "sub-01" / "eeg").iterdir():  # a derivative labelled by desc
        f.rename(f.with_name(f.name.replace("task-rest_", "task-rest_desc-bcg_")))
    found = eeg_io.find_derivative_eeg(_eeg_file(eeglab_bids), deriv)
    assert found.name == "sub-01_task-rest_desc-bcg_eeg.set"
    res = clean_eeg(found, EEGConfig(), tr=TR, n_volumes=N_VOL, is_derivative=True)
    assert res.provenance["GradientCorrection"]["Requested"] == "auto"
    assert res.provenance["GradientCorrection"]["method"] == "none"
    assert res.provenance["GradientCorrection"]["detected"] is None  # not even measured
    assert "eeg-derivatives" in res.provenance["ArtifactCorrectionNote"]
    # a run missing from the derivatives falls back to its raw EEG (None)
    other = tmp_path / "sub-02_task-rest_eeg.set"
    assert eeg_io.find_derivative_eeg(other, deriv) is None
    with pytest.raises(DataError, match="--eeg-derivatives folder does not exist") as exc:
        eeg_io.find_derivative_eeg(other, tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(exc.value)


def test_segmented_export_keeps_the_covered_volumes_and_says_so(eeglab_bids, tmp_path):
    """An export cut from inside the run (as BrainVision Analyzer segments from a block marker)."""
    import mne_bids

    raw = eeg_io.read_eeg(_eeg_file(eeglab_bids))
    raw.crop(tmin=30.6)  # volume 13's marker is at 31 s: volumes 0-12 are not in the export
    root = tmp_path / "segmented"
    bp = mne_bids.BIDSPath(subject="01", task="rest", root=root, datatype="eeg")
    mne_bids.write_raw_bids(raw, bp, allow_preload=True, format="EEGLAB", overwrite=True,
                            verbose=False)
    from bids_eeg2fmri.workflows.eeg import init_eeg_preproc_wf

    out = tmp_path / "out"
    config = Config.from_sources({"output_dir": str(out), "bids_dir": str(root)})
    wf = init_eeg_preproc_wf(config=config, metadata={"RepetitionTime": TR,
                                                      "NumberOfVolumes": N_VOL})
    wf.base_dir = str(tmp_path / "work")
    wf.inputs.inputnode.eeg_file = str(_eeg_file(root))
    wf.run()
    eeg_dir = out / "sub-01" / "eeg"
    h5 = eeg_dir / "sub-01_task-rest_desc-stft_spectrogram.h5"
    with h5py.File(h5) as f:
        np.testing.assert_array_equal(f["volume_indices"][()], np.arange(13, N_VOL))
    want = {"BOLDVolumes": N_VOL, "CoveredVolumes": N_VOL - 13, "CoveredRange": [13, N_VOL - 1],
            "UncoveredVolumes": 13}
    for sidecar in (h5.with_suffix(".json"),
                    eeg_dir / "sub-01_task-rest_desc-bandpower_timeseries.json",
                    eeg_dir / "sub-01_task-rest_desc-preproc_eeg.json"):
        cov = json.loads(sidecar.read_text())["EEGCoverage"]
        assert {k: cov[k] for k in want} == want, sidecar
    # the group level reads rows 13.. into their BOLD volumes and marks 0-12 as without EEG
    from bids_eeg2fmri.data.readers import read_spectrogram

    _, valid, _, _ = read_spectrogram(h5, N_VOL)
    assert not valid[:13].any() and valid[13:].all()
    # the same export against a 300-volume run covers 97 of them (32 %): refused unless allowed
    path = _eeg_file(root)
    with pytest.raises(DataError, match="covers 97 of the 300 BOLD volumes") as exc:
        clean_eeg(path, EEGConfig(), tr=TR, n_volumes=300)
    assert exc.value.code == 65 and str(path) in str(exc.value)
    res = clean_eeg(path, EEGConfig(min_eeg_coverage=0.3), tr=TR, n_volumes=300)
    assert res.first_volume == 203 and res.provenance["EEGCoverage"]["CoveredRange"] == [203, 299]
