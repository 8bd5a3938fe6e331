"""The simulator: BIDS validity, readers, determinism, options, and the physics against truth.

Every physics test measures a quantity in the written files and compares it with the ground
truth or with an independent computation (own HRF, own band filter, own resampling), so it
fails when the simulator's model is wrong.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scipy.ndimage import map_coordinates
from scipy.signal import butter, hilbert, sosfiltfilt
from scipy.stats import gamma

from bids_eeg2fmri.cli import simulate as cli
from bids_eeg2fmri.errors import UsageError
from bids_eeg2fmri.simulate import SimulationParams, load_ground_truth, simulate_dataset
from bids_eeg2fmri.simulate.bold import detrend, motion_matrix, slice_timing
from bids_eeg2fmri.resources.atlases import resample_labels

from conftest import tree_hash

VALIDATOR = Path(sys.executable).parent / "bids-validator-deno"

# A dataset with every participant kind and both artifacts, small enough to write in seconds.
MIXED = SimulationParams(subjects=1, eeg_only_subjects=1, fmri_only_subjects=1, volumes=40,
                         grid=(24, 24, 14), voxel_size=(8.0, 8.0, 10.0), channels=16,
                         sfreq=250.0, gradient_artifact=True, bcg=True, seed=11)
# Long enough for stable correlations (240 volumes), larger motion so that it matters.
PHYSICS = SimulationParams(subjects=1, volumes=240, grid=(28, 28, 16), voxel_size=(7.0, 7.0, 9.0),
                           channels=32, sfreq=250.0, motion_scale=4.0, seed=5)
# Still head and a large BOLD change: slice times become measurable in the images.
TIMING = SimulationParams(subjects=0, fmri_only_subjects=1, volumes=30, grid=(24, 24, 12),
                          voxel_size=(8.0, 8.0, 11.0), motion_scale=0.0, bold_amplitude=0.5,
                          tr=2.0, seed=3)
TINY = dict(subjects=1, sessions=2, volumes=12, grid=(12, 12, 8), voxel_size=(14.0, 14.0, 16.0),
            channels=8, sfreq=200.0, gradient_artifact=True)


@pytest.fixture(scope="module")
def mixed(tmp_path_factory) -> Path:
    return simulate_dataset(tmp_path_factory.mktemp("mixed") / "bids", MIXED).bids_dir


@pytest.fixture(scope="module")
def physics(tmp_path_factory) -> Path:
    return simulate_dataset(tmp_path_factory.mktemp("physics") / "bids", PHYSICS).bids_dir


@pytest.fixture(scope="module")
def timing(tmp_path_factory) -> Path:
    return simulate_dataset(tmp_path_factory.mktemp("timing") / "bids", TIMING).bids_dir


def own_hrf(dt: float) -> np.ndarray:
    """Double-gamma HRF written independently of the simulator (peak 6 s, undershoot 16 s)."""
    t = np.arange(0, 32, dt)
    h = gamma.pdf(t, 6) - gamma.pdf(t, 16) / 6
    return h / (h.sum() * dt)


def hrf_sources(truth: dict) -> np.ndarray:
    """HRF ∗ latent sources on the source grid, computed here."""
    dt = 1.0 / truth["source_sfreq"]
    h = own_hrf(dt)
    n = truth["source_times"].size
    return np.stack([np.convolve(s, h)[:n] * dt for s in truth["sources"].T], axis=1)


# ------------------------------------------------------------------------------ BIDS validity
def _validator_errors(path: Path) -> list[dict]:
    proc = subprocess.run([str(VALIDATOR), "--format", "json", str(path)], capture_output=True,
                          text=True, timeout=300)
    report = json.loads(proc.stdout)
    return [i for i in report["issues"]["issues"] if i["severity"] == "error"]


def test_validator_passes_raw_and_truth(mixed):
    assert _validator_errors(mixed) == []
    assert _validator_errors(mixed / "derivatives" / "simulation") == []


def test_layout_and_participant_kinds(mixed):
    parts = pd.read_csv(mixed / "participants.tsv", sep="\t")
    assert list(parts["group"]) == ["eegfmri", "eeg", "fmri"]
    assert sorted(p.name for p in (mixed / "sub-01").iterdir()) == ["eeg", "func"]
    assert sorted(p.name for p in (mixed / "sub-02").iterdir()) == ["eeg"]
    assert sorted(p.name for p in (mixed / "sub-03").iterdir()) == ["func"]
    assert not list(mixed.rglob("ses-*")), "one session must not create a ses entity"
    side = json.loads((mixed / "sub-01/func/sub-01_task-rest_run-1_bold.json").read_text())
    assert {"RepetitionTime", "SliceTiming", "SliceEncodingDirection", "TaskName"} <= set(side)
    assert not any("ummy" in k or "Discarded" in k for k in side), "dummy scans are unannounced"
    eeg_side = json.loads((mixed / "sub-01/eeg/sub-01_task-rest_run-1_eeg.json").read_text())
    for key in ("SamplingFrequency", "PowerLineFrequency", "EEGReference", "SoftwareFilters",
                "TaskName"):
        assert key in eeg_side
    chans = pd.read_csv(mixed / "sub-01/eeg/sub-01_task-rest_run-1_channels.tsv", sep="\t")
    assert chans.set_index("name").loc["ECG", "type"] == "ECG"
    img = nib.load(mixed / "sub-01/func/sub-01_task-rest_run-1_bold.nii.gz")
    rot = img.affine[:3, :3] / np.linalg.norm(img.affine[:3, :3], axis=0)
    assert np.abs(np.abs(rot) - np.eye(3)).max() > 0.01, "EPI grid must be oblique"
    assert img.header.get_zooms()[3] == pytest.approx(MIXED.tr)


def test_mne_bids_and_pybids_read_it(mixed):
    import bids
    import mne_bids

    bp = mne_bids.BIDSPath(subject="01", task="rest", run=1, datatype="eeg", root=mixed)
    raw = mne_bids.read_raw_bids(bp, verbose="error")
    assert raw.info["sfreq"] == MIXED.sfreq
    assert raw.get_channel_types(picks=["ECG"]) == ["ecg"]
    assert raw.info["meas_date"].year == 2000
    layout = bids.BIDSLayout(mixed)
    assert layout.get_subjects() == ["01", "02", "03"]
    bolds = layout.get(suffix="bold", extension=".nii.gz")
    assert len(bolds) == 2
    assert layout.get_metadata(bolds[0].path)["RepetitionTime"] == MIXED.tr
    with_truth = bids.BIDSLayout(mixed, derivatives=True)
    assert with_truth.get(scope="derivatives", subject="01", desc="noiseless",
                          extension=".nii.gz")


def test_ground_truth_loader(mixed):
    t = load_ground_truth(mixed, "sub-01")
    n_vol, n_slices = MIXED.volumes, MIXED.grid[2]
    n_reg = len(t["region_names"])
    assert t["motion"].shape == (n_vol, 6) and t["motion_matrices"].shape == (n_vol, 4, 4)
    assert t["regional_signals"].shape == (n_vol, n_reg)
    assert t["regional_signals_per_slice"].shape == (n_vol, n_slices, n_reg)
    assert t["noiseless_bold"].shape == tuple(MIXED.grid) + (n_vol,)
    assert t["noiseless_bold_mni"].shape[3] == n_vol
    assert t["clean_eeg"].shape == (MIXED.channels, t["eeg_n_samples"])
    assert t["region_driven"].sum() == MIXED.sources
    assert np.isnan(t["noise_ceiling"][~t["region_driven"]]).all()
    assert ((t["noise_ceiling"][t["region_driven"]] > 0)
            & (t["noise_ceiling"][t["region_driven"]] <= 1)).all()
    eeg_only = load_ground_truth(mixed, "02")
    assert "clean_eeg" in eeg_only and "motion" not in eeg_only
    fmri_only = load_ground_truth(mixed, "03")
    assert "motion" in fmri_only and "clean_eeg" not in fmri_only
    with pytest.raises(Exception, match="no ground truth"):
        load_ground_truth(mixed, "01", run=7)


# --------------------------------------------------------------------------------- determinism
def test_same_seed_byte_identical_and_cli(tmp_path):
    argv = [str(tmp_path / "cli"), "--quiet", "--subjects", "1", "--sessions", "2",
            "--volumes", "12", "--grid", "12", "12", "8", "--voxel-size", "14", "14", "16",
            "--channels", "8", "--sfreq", "200", "--gradient-artifact"]
    assert cli.main(argv) == 0
    simulate_dataset(tmp_path / "api", SimulationParams(**TINY))
    assert tree_hash(tmp_path / "cli") == tree_hash(tmp_path / "api")
    assert (tmp_path / "cli/sub-01/ses-2/func/sub-01_ses-2_task-rest_run-1_bold.nii.gz").exists()
    simulate_dataset(tmp_path / "other", SimulationParams(**{**TINY, "seed": 1}))
    assert tree_hash(tmp_path / "other") != tree_hash(tmp_path / "api")
    for gz in (tmp_path / "api").rglob("*.gz"):
        head = gz.read_bytes()[:10]
        assert head[4:8] == b"\0\0\0\0", f"{gz.name}: gzip mtime must be 0"
        assert not head[3] & 0x08, f"{gz.name}: gzip header must not store a file name"
        with gzip.open(gz) as fh:
            fh.read(1)
    assert not list(tmp_path.glob(".tmp-*")), "the staging folder must be gone"


# ------------------------------------------------------------------------------------ options
@pytest.mark.parametrize("argv", [
    ["--volumes", "-5"],
    ["--subjects", "-1"],
    ["--grid", "64", "0", "30"],
    ["--voxel-size", "3", "-3", "4"],
    ["--tr", "0.3", "--grid", "64", "64", "30"],
    ["--tr", "1.0", "--acquisition-time", "1.5"],
    ["--sfreq", "80"],
    ["--sfreq", "60", "--line-freq", "20"],
    ["--sources", "9"],
    ["--sources", "0"],
    ["--dummy-scans", "100", "--volumes", "100"],
    ["--slice-order", "multiband", "--multiband-factor", "4", "--grid", "40", "40", "30"],
    ["--channels", "500"],
    ["--volume-marker", "R,128"],
    ["--volumes", "many"],
    ["--no-such-option"],
])
def test_bad_options_exit_64_with_one_line(argv, tmp_path, capsys):
    assert cli.main([str(tmp_path / "out"), *argv]) == 64
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("bids-eeg2fmri-simulate: error:")
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_console_script_bad_option_and_existing_output(tmp_path):
    script = Path(sys.executable).parent / "bids-eeg2fmri-simulate"
    proc = subprocess.run([str(script), str(tmp_path / "o"), "--sources", "12"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 64 and proc.stderr.count("\n") == 1
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("x")
    with pytest.raises(UsageError, match="not empty"):
        simulate_dataset(tmp_path / "full", SimulationParams(**TINY))
    assert (tmp_path / "full" / "keep.txt").exists()


def test_slice_orders():
    seq = slice_timing(10, 2.0, "sequential")
    assert np.allclose(seq, np.arange(10) * 0.2)
    inter = slice_timing(10, 2.0, "interleaved")
    assert sorted(np.round(inter / 0.2).astype(int)) == list(range(10))
    assert np.argsort(inter)[:5].tolist() == [1, 3, 5, 7, 9]  # Siemens, even count: odd first
    mb = slice_timing(12, 1.2, "multiband", mb=3)
    assert np.allclose(mb[:4], mb[4:8]) and np.allclose(mb[:4], mb[8:])
    assert len(np.unique(mb)) == 4 and mb.max() < 1.2


# ------------------------------------------------------------------------------------ physics
def test_regional_bold_follows_hrf_sources(physics):
    """Noiseless MNI BOLD: driven regions r > 0.99 with HRF∗source; un-driven ones carry none."""
    t = load_ground_truth(physics, "01")
    img = t["noiseless_bold_mni"]
    labels = np.asarray(resample_labels(t["region_labels_mni"], img).dataobj)
    data = img.get_fdata(dtype=np.float32)
    times = t["volume_onsets"] + t["slice_time_ref"]
    x = hrf_sources(t)
    expected = np.stack([np.interp(times, t["source_times"], x[:, k])
                         for k in range(x.shape[1])], axis=1)
    for r, name in enumerate(t["region_names"]):
        mask = labels == r + 1
        assert mask.sum() > 5, name
        signal = data[mask].mean(axis=0)
        if t["region_driven"][r]:
            k = t["source_names"].index(t["region_source"][r])
            assert np.corrcoef(signal, expected[:, k])[0, 1] > 0.99, name
        else:
            assert signal.std() / signal.mean() < 1e-3, f"{name} must not be driven"


def test_noisy_bold_driven_vs_undriven(physics):
    """Raw BOLD through the true motion: driven regions track HRF∗source, controls do not."""
    t = load_ground_truth(physics, "01")
    img = nib.load(physics / "sub-01/func/sub-01_task-rest_run-1_bold.nii.gz")
    data = np.asarray(img.dataobj, dtype=np.float32)
    grid = data.shape[:3]
    ijk = np.indices(grid).reshape(3, -1).astype(float)
    world = img.affine[:3, :3] @ ijk + img.affine[:3, 3:4]
    dseg = t["region_labels_mni"]
    inv_dseg = np.linalg.inv(dseg.affine)
    keep = np.arange(t["dummy_scans"], t["n_volumes"])
    regional = np.zeros((keep.size, len(t["region_names"])))
    for i, v in enumerate(keep):
        inv = np.linalg.inv(t["motion_matrices"][v])
        mni = t["anatomy"].to_mni(inv[:3, :3] @ world + inv[:3, 3:4])
        lab = map_coordinates(np.asarray(dseg.dataobj), inv_dseg[:3, :3] @ mni + inv_dseg[:3, 3:4],
                              order=0)
        vol = data[..., v].ravel()
        for r in range(regional.shape[1]):
            regional[i, r] = vol[lab == r + 1].mean()
    regional = detrend(regional, t["tr"])
    x = hrf_sources(t)
    times = t["volume_onsets"][keep] + t["slice_time_ref"]
    expected = np.stack([np.interp(times, t["source_times"], x[:, k])
                         for k in range(x.shape[1])], axis=1)
    for r, name in enumerate(t["region_names"]):
        rs = [np.corrcoef(regional[:, r], expected[:, k])[0, 1] for k in range(x.shape[1])]
        if t["region_driven"][r]:
            k = t["source_names"].index(t["region_source"][r])
            assert rs[k] > 0.5, name
        else:
            assert max(abs(v) for v in rs) < 0.2, name


def test_slice_k_sampled_at_its_slice_time(timing):
    """Fitting the acquisition time of each slice to the images recovers SliceTiming[k]."""
    t = load_ground_truth(timing, "01")
    side = json.loads((timing / "sub-01/func/sub-01_task-rest_run-1_bold.json").read_text())
    st = np.array(side["SliceTiming"])
    data = t["noiseless_bold"].get_fdata(dtype=np.float32)
    amp = TIMING.bold_amplitude
    x = hrf_sources(t)
    step = TIMING.tr / TIMING.grid[2] / 4
    candidates = np.arange(0, TIMING.tr, step)
    series = data.reshape(-1, data.shape[2], data.shape[3])  # (xy, slice, t)
    found = []
    for k in range(data.shape[2]):
        vox = series[:, k][series[:, k].min(axis=1) > 50]  # voxels inside the head
        vox = vox / vox.mean(axis=1, keepdims=True)
        strong = vox.std(axis=1) > 0.05
        assert strong.sum() >= 3, f"slice {k} has no driven voxels"
        vox = vox[strong]
        costs = []
        for delta in candidates:
            times = t["volume_onsets"] + delta
            model = 1 + amp * np.stack([np.interp(times, t["source_times"], x[:, j])
                                        for j in range(x.shape[1])])  # (K, T)
            model /= model.mean(axis=1, keepdims=True)
            err = ((vox[:, None, :] - model[None]) ** 2).sum(axis=2).min(axis=1)
            costs.append(err.sum())
        found.append(candidates[int(np.argmin(costs))])
    assert np.abs(np.array(found) - st).max() <= step / 2 + 1e-9


def test_motion_parameters_reproduce_the_images(physics):
    """Resampling volume t through the saved pose onto volume 0 undoes the motion."""
    t = load_ground_truth(physics, "01")
    data = t["noiseless_bold"].get_fdata(dtype=np.float32)
    aff = t["epi_affine"]
    assert np.allclose(t["noiseless_bold"].affine, aff)
    for v in (0, 17, 100):
        assert np.allclose(motion_matrix(t["motion"][v], t["motion_centre"]),
                           t["motion_matrices"][v])
    # The volume with the largest displacement of the brain centre.
    centre = np.append(t["motion_centre"], 1.0)
    shift = [np.linalg.norm(m @ centre - centre) + 60 * np.abs(p[3:]).sum()
             for m, p in zip(t["motion_matrices"], t["motion"])]
    v = int(np.argmax(shift))
    assert shift[v] > 2.0, "the physics dataset must move"
    ijk = np.indices(data.shape[:3]).reshape(3, -1).astype(float)
    ref = data[..., 0].ravel()
    brain = ref > 0.3 * ref.max()

    def through(matrix: np.ndarray) -> np.ndarray:
        src = np.linalg.inv(aff) @ matrix @ aff
        idx = src[:3, :3] @ ijk + src[:3, 3:4]
        return map_coordinates(data[..., v], idx, order=1, mode="nearest")

    def err(img: np.ndarray) -> float:
        return float(np.sqrt(np.mean((img[brain] - ref[brain]) ** 2)))

    corrected = err(through(t["motion_matrices"][v]))
    uncorrected = err(data[..., v].ravel())
    wrong_way = err(through(np.linalg.inv(t["motion_matrices"][v])))
    assert corrected < 0.5 * uncorrected
    assert corrected < 0.5 * wrong_way


def test_dummy_scans_are_brighter(physics):
    t = load_ground_truth(physics, "01")
    data = np.asarray(nib.load(physics / "sub-01/func/sub-01_task-rest_run-1_bold.nii.gz")
                      .dataobj, dtype=np.float32)
    mean = data.reshape(-1, data.shape[3]).mean(axis=0)
    steady = np.median(mean[t["dummy_scans"]:])
    ratio = mean[: t["dummy_scans"]] / steady
    assert np.allclose(ratio, t["dummy_factors"], rtol=0.02)
    assert (ratio > 1.02).all() and np.all(np.diff(ratio) < 0)
    assert ratio.min() > (mean[t["dummy_scans"]:] / steady).max(), "overshoot above any drift"


def test_eeg_band_envelope_tracks_source(physics):
    """Band amplitude of the clean EEG in each source's channel group: r > 0.9 with the truth."""
    t = load_ground_truth(physics, "01")
    clean = np.asarray(t["clean_eeg"], dtype=np.float64)
    sf = t["eeg_sfreq"]
    n_tr = int(round(t["tr"] * sf))
    onsets = t["volume_onset_samples"]
    samples_t = (np.arange(clean.shape[1]) - t["first_volume_sample"]) / sf
    for k, name in enumerate(t["source_names"]):
        lo, hi = t["source_bands"][name]
        sos = butter(4, [lo, hi], btype="band", fs=sf, output="sos")
        idx = [t["eeg_channels"].index(c) for c in t["channel_groups"][name]]
        amp = np.abs(hilbert(sosfiltfilt(sos, clean[idx], axis=1), axis=1)).mean(axis=0)
        env = np.interp(samples_t, t["source_times"], t["source_envelopes"][:, k])
        measured = np.array([amp[o:o + n_tr].mean() for o in onsets])
        true = np.array([env[o:o + n_tr].mean() for o in onsets])
        assert np.corrcoef(measured, true)[0, 1] > 0.9, name
    # per-channel truth = spread weight × source envelope where one source has the band
    for b, band in enumerate(t["bands"]):
        ks = [k for k, n in enumerate(t["source_names"])
              if t["source_bands"][n] == t["bands"][band]]
        if len(ks) == 1:
            expected = t["spread_weights"][:, ks[0]][:, None] * t["source_envelopes"][:, ks[0]]
            assert np.allclose(t["channel_envelopes"][b], expected, rtol=1e-4, atol=1e-4)


def test_triggers_one_per_volume_at_tr_spacing(mixed):
    import mne
    import mne_bids

    t = load_ground_truth(mixed, "01")
    raw = mne_bids.read_raw_bids(mne_bids.BIDSPath(subject="01", task="rest", run=1,
                                                   datatype="eeg", root=mixed), verbose="error")
    ann = raw.annotations
    assert set(ann.description) == {"Response/R128"}
    events, _ = mne.events_from_annotations(raw, verbose="error")
    samples = events[:, 0] - raw.first_samp
    assert samples.size == MIXED.volumes
    assert np.array_equal(samples, t["volume_onset_samples"])
    assert np.all(np.diff(samples) == round(MIXED.tr * MIXED.sfreq))
    assert samples[0] / MIXED.sfreq == pytest.approx(MIXED.eeg_lead)
    end_of_scan = samples[-1] + MIXED.tr * MIXED.sfreq
    assert raw.n_times - end_of_scan >= MIXED.eeg_tail * MIXED.sfreq - 1
    vmrk = (mixed / "sub-01/eeg/sub-01_task-rest_run-1_eeg.vmrk").read_text()
    assert vmrk.count("=Response,R128,") == MIXED.volumes
    events_tsv = pd.read_csv(mixed / "sub-01/eeg/sub-01_task-rest_run-1_events.tsv", sep="\t")
    assert np.array_equal(events_tsv["sample"].to_numpy(), t["volume_onset_samples"])


def test_volume_marker_option(tmp_path):
    out = simulate_dataset(tmp_path / "m", SimulationParams(
        **{**TINY, "sessions": 1, "gradient_artifact": False, "volume_marker": "Scan Start"}))
    vmrk = next(out.bids_dir.rglob("*_eeg.vmrk")).read_text()
    assert vmrk.count(",Scan Start,") == TINY["volumes"]
    import mne

    raw = mne.io.read_raw_brainvision(next(out.bids_dir.rglob("*_eeg.vhdr")), verbose="error")
    assert set(raw.annotations.description) == {"Comment/Scan Start"}


def _raw_minus_clean(bids_dir: Path, t: dict) -> tuple[np.ndarray, np.ndarray]:
    import mne

    raw = mne.io.read_raw_brainvision(bids_dir / "sub-01/eeg/sub-01_task-rest_run-1_eeg.vhdr",
                                      verbose="error", preload=True)
    data = raw.get_data(picks=t["eeg_channels"]) * 1e6
    return data, data - np.asarray(t["clean_eeg"])


def test_gradient_artifact_amplitude_and_period(mixed):
    t = load_ground_truth(mixed, "01")
    data, art = _raw_minus_clean(mixed, t)
    sf, grad = t["eeg_sfreq"], t["gradient"]
    first = t["first_volume_sample"]
    scan = slice(first, first + int(MIXED.volumes * MIXED.tr * sf))
    peak = np.abs(art[:, scan]).max()
    assert 0.9 * MIXED.gradient_amplitude < peak < 1.02 * MIXED.gradient_amplitude
    assert np.abs(art[:, :first]).max() < 0.05 * MIXED.gradient_amplitude, "no artifact before"
    assert np.sqrt(np.mean(art[:, scan] ** 2)) > 30 * np.sqrt(np.mean(np.asarray(
        t["clean_eeg"]) ** 2)), "gradient artifact must dwarf the EEG"
    # period: autocorrelation peak of the strongest channel within one volume
    c = int(np.argmax(np.abs(art[:, scan]).max(axis=1)))
    x = art[c, scan] - art[c, scan].mean()
    period = grad["slice_period"] * sf
    lags = np.arange(int(0.5 * period), int(1.5 * period) + 1)
    ac = [np.dot(x[:-lag], x[lag:]) for lag in lags]
    best = lags[int(np.argmax(ac))]
    assert abs(best - period) <= 1.0
    assert grad["slice_period"] == pytest.approx(MIXED.tr / MIXED.grid[2])
    # time-locked: epochs of whole volumes look alike
    n_tr = int(round(MIXED.tr * sf))
    epochs = np.stack([art[c, o:o + n_tr] for o in t["volume_onset_samples"][:-1]])
    r = np.corrcoef(epochs)
    assert r[np.triu_indices_from(r, 1)].min() > 0.95


def test_bcg_locked_to_heartbeat_with_ecg(mixed):
    t = load_ground_truth(mixed, "01")
    import mne

    raw = mne.io.read_raw_brainvision(mixed / "sub-01/eeg/sub-01_task-rest_run-1_eeg.vhdr",
                                      verbose="error", preload=True)
    sf = t["eeg_sfreq"]
    ecg = raw.get_data(picks=["ECG"])[0] * 1e6
    first = t["first_volume_sample"]
    quiet = t["bcg"]["r_peak_samples"]
    quiet = quiet[(quiet > int(0.2 * sf)) & (quiet < first - int(0.2 * sf))]
    assert quiet.size >= 2, "the lead-in must hold heartbeats"
    for r in quiet:  # R peaks are the ECG maxima outside the scan
        window = ecg[r - int(0.15 * sf): r + int(0.15 * sf)]
        assert abs(int(np.argmax(window)) - int(0.15 * sf)) <= 1
    rr = np.diff(t["bcg"]["r_peak_samples"]) / sf
    assert np.median(60 / rr) == pytest.approx(MIXED.heart_rate, rel=0.1)
    data = raw.get_data(picks=t["eeg_channels"]) * 1e6
    art = data[:, :first] - np.asarray(t["clean_eeg"])[:, :first]
    assert 0.5 * MIXED.bcg_amplitude < np.abs(art).max() < 1.6 * MIXED.bcg_amplitude
    delay = int(round(t["bcg"]["delay_s"] * sf))
    c = int(np.argmax(np.abs(art).max(axis=1)))
    span = int(0.6 * sf)
    epochs = [art[c, r + delay: r + delay + span] for r in quiet if r + delay + span <= first]
    if len(epochs) >= 2:
        r = np.corrcoef(np.stack(epochs))
        assert r[np.triu_indices_from(r, 1)].min() > 0.9
