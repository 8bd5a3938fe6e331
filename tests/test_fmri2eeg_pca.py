"""Voxel principal components as fMRI→EEG input: fitted on training volumes only, saved with the
model, and the same projection at apply time."""

from __future__ import annotations

import numpy as np
import pytest

from bids_eeg2fmri.data.regions import VoxelPCA, pca_spec, project_runs
from bids_eeg2fmri.data.windows import DataSpec, RunArrays, SequenceSpec, index_samples
from bids_eeg2fmri.data.splits import make_folds
from bids_eeg2fmri.training import FMRI2EEG, evaluate, fit, load_model
from bids_eeg2fmri.training.synth import fit_input_pca
from bids_eeg2fmri.training.trainer import TrainConfig

N_VOL, N_VOX = 120, 60
CHANNELS, FREQS = ["O1", "O2", "Cz"], [2.0, 6.0, 10.0, 20.0]


def _runs(seed: int = 0) -> tuple[list[RunArrays], DataSpec]:
    """Four subjects; a latent slow signal loads on 10 voxels and drives 10 Hz power at O1/O2."""
    rng = np.random.default_rng(seed)
    runs = []
    for s in range(4):
        latent = np.convolve(rng.standard_normal(N_VOL + 20), np.ones(5) / 5, "same")[:N_VOL]
        vox = rng.standard_normal((N_VOL, N_VOX)).astype(np.float32)
        vox[:, :10] += 2.0 * latent[:, None]
        eeg = rng.standard_normal((N_VOL, len(CHANNELS), len(FREQS), 1)).astype(np.float32)
        eeg[:, :2, 2, 0] += 2.0 * latent[:, None]
        runs.append(RunArrays(eeg=eeg, bold=vox, subject=f"0{s + 1}"))
    spec = DataSpec(CHANNELS, FREQS, 1, 2.0, "voxels", N_VOX, mask=np.ones((N_VOX, 1, 1), bool))
    return runs, spec


def test_pca_is_fitted_on_training_volumes_only():
    runs, _ = _runs()
    window = SequenceSpec(window=6, horizon=2)
    samples = index_samples(runs, window)
    fold = make_folds(samples, "loso", spec=window, tr=2.0)[0]
    test_subject = set(samples["subject"].to_numpy()[fold.test])
    pca = fit_input_pca(runs, samples, fold.train, window, 5)
    # Changing the held-out subject's voxels must not change the components.
    altered = [RunArrays(eeg=r.eeg, bold=np.random.default_rng(9).standard_normal(r.bold.shape)
                         .astype(np.float32), subject=r.subject)
               if r.subject in test_subject else r for r in runs]
    again = fit_input_pca(altered, samples, fold.train, window, 5)
    np.testing.assert_allclose(pca.components, again.components)
    # ... while changing a training subject's voxels does.
    train_subject = samples["subject"].to_numpy()[fold.train][0]
    altered = [RunArrays(eeg=r.eeg, bold=np.random.default_rng(9).standard_normal(r.bold.shape)
                         .astype(np.float32), subject=r.subject)
               if r.subject == train_subject else r for r in runs]
    other = fit_input_pca(altered, samples, fold.train, window, 5)
    assert not np.allclose(np.abs(pca.components), np.abs(other.components), atol=1e-3)
    # The first component is the latent signal's voxels.
    assert np.abs(pca.components[0, :10]).min() > np.abs(pca.components[0, 10:]).max()


def test_pca_model_trains_saves_and_projects_alike(tmp_path):
    runs, spec = _runs()
    window = SequenceSpec(window=6, horizon=2)
    samples = index_samples(runs, window)
    train = np.flatnonzero(samples["subject"].to_numpy() != "04")
    test = np.flatnonzero(samples["subject"].to_numpy() == "04")
    pca = fit_input_pca(runs, samples, train, window, 5)
    pruns, pspec = project_runs(runs, pca), pca_spec(spec, pca)
    assert pspec.region_names == ["pc1", "pc2", "pc3", "pc4", "pc5"]
    fitted = fit(pruns, pspec, "ridge", direction=FMRI2EEG, window=window, samples=samples,
                 rows=train, train_config=TrainConfig(progress=False))
    fitted.input_pca = pca
    ev = evaluate(fitted, pruns, samples=samples, rows=test,
                  groups={"occ": ["O1", "O2"]}, bands={"alpha": (8.0, 13.0)})
    assert ev.metrics["r_alpha_occ"] > 0.5, ev.metrics
    fitted.save(tmp_path / "model.safetensors")
    loaded = load_model(tmp_path / "model.safetensors")
    np.testing.assert_allclose(loaded.input_pca.components, pca.components, rtol=1e-6)
    vox = np.asarray(runs[3].bold)
    np.testing.assert_allclose(loaded.input_pca.transform(vox), pruns[3].bold, atol=1e-4)


def test_voxel_pca_refuses_wrong_width():
    from bids_eeg2fmri.errors import DataError

    pca = VoxelPCA(2).fit([np.random.default_rng(0).standard_normal((30, 8))])
    with pytest.raises(DataError, match="8"):
        pca.transform(np.zeros((5, 9)))
