"""Full-spectrogram reconstruction: every retained TR covered, written like the measured one."""

from __future__ import annotations

import h5py
import numpy as np

import _torch_threads  # noqa: F401  (one thread)
from fmri2eeg_sim import simulate

from bids_eeg2fmri import metrics as M
from bids_eeg2fmri.data.readers import read_spectrogram
from bids_eeg2fmri.data.windows import SequenceSpec
from bids_eeg2fmri.eeg.pipeline import SpectralResult, write_spectrogram_h5
from bids_eeg2fmri.training import fit
from bids_eeg2fmri.training.synth import reconstruct, write_synth_spectrogram

WINDOW = SequenceSpec(window=20, horizon=5)
SOURCE = "sub-05_task-rest_run-1_bold.nii.gz"


def _fitted():
    runs, spec, info = simulate(n_subjects=5, n_volumes=160, seed=5)
    return runs, spec, info, fit(runs[:4], spec, "ridge", direction="fmri2eeg", window=WINDOW)


def test_reconstruction_covers_every_retained_tr_and_tracks_truth():
    runs, spec, info, fitted = _fitted()
    run = runs[4]                                            # a subject the model never saw
    out = reconstruct(fitted, run)
    assert out.shape == (run.n_volumes, 6, 8)
    assert np.isfinite(out[run.retained]).all() and np.isnan(out[~run.retained]).all()
    # Band power of the driven cells follows the noiseless spectrogram across the whole run.
    truth = np.asarray(run.eeg_truth).mean(-1)
    keep = run.retained
    pc, names = M.spectral_cells(out[keep], spec.frequencies, spec.channels, info["bands"],
                                 info["groups"])
    tc, _ = M.spectral_cells(truth[keep], spec.frequencies, spec.channels, info["bands"],
                             info["groups"])
    r = dict(zip(names, M.pearson_temporal(pc, tc)))
    assert r["alpha_occipital"] > 0.6 and r["beta_central"] > 0.6, r
    assert abs(r["theta_frontal"]) < 0.3
    # Units: dB like the measured EEG (fMRI-only subject: the training subjects' mean baseline).
    assert abs(np.nanmean(out) - np.asarray(run.eeg).mean()) < 3.0


def test_synth_file_has_the_measured_layout(tmp_path):
    runs, spec, info, fitted = _fitted()
    run = runs[4]
    measured = tmp_path / "measured.h5"
    vols = np.arange(run.n_volumes)
    write_spectrogram_h5(measured, SpectralResult(
        spectrogram=np.asarray(run.eeg), frequencies=np.asarray(spec.frequencies),
        frame_times=np.array([0.5, 1.5]), channels=spec.channels, spec_volumes=vols,
        spec_onsets=vols * 2.0, bandpower_columns=[], bandpower=np.empty((0, 0)),
        bandpower_volumes=vols, bandpower_onsets=vols * 2.0, metadata={}), "log-power")
    path = write_synth_spectrogram(tmp_path / "deriv", SOURCE, fitted, run,
                                   frame_times=np.array([0.5, 1.5]))
    assert path == tmp_path / "deriv/sub-05/eeg/sub-05_task-rest_run-1_desc-synth_spectrogram.h5"
    assert path.with_suffix(".json").exists()
    with h5py.File(measured) as a, h5py.File(path) as b:
        assert set(a) == set(b)
        assert list(a["spectrogram"].attrs["axes"]) == list(b["spectrogram"].attrs["axes"])
        assert a["spectrogram"].shape[1:] == b["spectrogram"].shape[1:]
        np.testing.assert_array_equal(b["volume_indices"][:], np.flatnonzero(run.retained))
    eeg, valid, channels, freqs = read_spectrogram(path, run.n_volumes)
    assert channels == spec.channels and np.allclose(freqs, spec.frequencies)
    np.testing.assert_array_equal(valid, run.retained)
    np.testing.assert_allclose(eeg[valid].mean(-1), reconstruct(fitted, run)[valid], atol=1e-4)
