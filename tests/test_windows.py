"""Paired windows, train-only normalisation and lazily loaded datasets."""

from __future__ import annotations

import _torch_threads  # noqa: F401
import h5py
import numpy as np
import pytest

from bids_eeg2fmri.data.datasets import WindowDataset
from bids_eeg2fmri.data.normalise import EEGNormaliser, TargetNormaliser
from bids_eeg2fmri.data.windows import (DataSpec, RunArrays, WindowSpec, eeg_volumes, index_samples,
                                        target_volumes)
from bids_eeg2fmri.errors import DataError
from eeg2fmri_sim import simulate


def _run(n=30, subject="01", run="1", **kw):
    eeg = np.arange(n, dtype=np.float32)[:, None, None, None] * np.ones((1, 2, 3, 2), np.float32)
    bold = np.arange(n, dtype=np.float32)[:, None] * np.ones((1, 4), np.float32)
    return RunArrays(eeg=eeg, bold=bold, subject=subject, run=run, **kw)


def test_targets_need_full_history_and_skip_dummies_and_motion():
    retained = np.arange(30) >= 3
    fd = np.zeros(30)
    fd[[12, 20]] = 1.5
    run = _run(retained=retained, fd=fd)
    spec = WindowSpec(window=5, lag=1, fd_threshold=0.5)
    vols = target_volumes(run, spec)
    # first target has 5 EEG volumes ending one TR before it: t - 1 - 4 >= 0 → t >= 5
    assert vols[0] == 5 and 12 not in vols and 20 not in vols
    assert np.array_equal(vols, [t for t in range(5, 30) if t not in (12, 20)])
    # history: previous 3 volumes must be retained (dummies 0-2) → first target 6
    assert target_volumes(run, WindowSpec(window=5, lag=1, history=3))[0] == 6
    # a gap in the EEG removes every target whose window covers it
    valid = np.ones(30, bool)
    valid[15] = False
    gap = target_volumes(_run(eeg_valid=valid), WindowSpec(window=4))
    assert not set(range(15, 19)) & set(gap) and 14 in gap and 19 in gap


def test_windows_never_cross_runs_and_slice_the_right_eeg():
    runs = [_run(20, run="1"), _run(20, run="2")]
    spec = WindowSpec(window=4, lag=2)
    table = index_samples(runs, spec)
    assert (table.groupby("run")["volume"].min() == 5).all()
    norm = EEGNormaliser()
    norm.stats = {"01": (np.zeros((2, 3), np.float32), np.ones((2, 3), np.float32))}
    tnorm = TargetNormaliser(np.zeros(4, np.float32), np.ones(4, np.float32))
    ds = WindowDataset(runs, table, spec, norm, tnorm)
    first_run2 = int(np.flatnonzero(table["run"].to_numpy() == "2")[0])
    item = ds[first_run2]
    assert item["x"].shape == (4, 2, 3, 2)
    assert item["x"][:, 0, 0, 0].tolist() == [0, 1, 2, 3]  # volumes 2..5 of run 2 only, t - lag
    assert float(item["y"][0]) == 5
    with pytest.raises(DataError, match="twice"):
        index_samples([runs[0], runs[0]], spec)
    with pytest.raises(DataError, match="no samples"):
        index_samples([_run(3)], spec)


def test_normalisers_use_training_volumes_only():
    runs, spec, _ = simulate(n_subjects=2, n_volumes=60, target="regions")
    win = WindowSpec(window=4)
    table = index_samples(runs, win)
    train = table[table["volume"] < 30]
    vols = {0: eeg_volumes(train[train.run_index == 0]["volume"].to_numpy(), win)}
    a = EEGNormaliser().fit(runs, vols)
    runs[0].eeg[40:] += 1000.0  # test-part EEG must not move the statistics
    runs[0].bold[40:] += 1000.0
    b = EEGNormaliser().fit(runs, vols)
    assert np.allclose(a.stats["01"][0], b.stats["01"][0])
    t = TargetNormaliser().fit([runs[0].bold[train[train.run_index == 0]["volume"]]])
    assert np.all(np.abs(t.mean) < 10)
    # a subject without training samples is standardised from its own EEG only, and recorded
    a.ensure(runs[1])
    assert a.self_fitted == ["02"]
    x = a.transform(np.asarray(runs[1].eeg), "02")
    assert np.allclose(x.mean(axis=(0, 3)), 0, atol=1e-4)


def test_lazy_h5_and_memmap_sources(tmp_path):
    runs, spec, _ = simulate(n_subjects=1, n_volumes=40, target="regions")
    with h5py.File(tmp_path / "eeg.h5", "w") as fh:
        fh["spectrogram"] = runs[0].eeg
    mm = np.lib.format.open_memmap(tmp_path / "bold.npy", "w+", np.float32, runs[0].bold.shape)
    mm[:] = runs[0].bold
    mm.flush()
    with h5py.File(tmp_path / "eeg.h5", "r") as fh:
        lazy = RunArrays(eeg=fh["spectrogram"], bold=np.load(tmp_path / "bold.npy", mmap_mode="r"),
                         subject="01", retained=runs[0].retained)
        win = WindowSpec(window=4)
        table = index_samples([lazy], win)
        norm = EEGNormaliser().fit([lazy], {0: eeg_volumes(table["volume"].to_numpy(), win)})
        tn = TargetNormaliser().fit([np.asarray(lazy.bold[table["volume"].to_numpy()])])
        lazy_ds = WindowDataset([lazy], table, win, norm, tn)
        mem_ds = WindowDataset(runs, table, win, norm, tn)
        for i in (0, 7, len(table) - 1):
            assert np.array_equal(lazy_ds[i]["x"], mem_ds[i]["x"])
            assert np.array_equal(lazy_ds[i]["y"], mem_ds[i]["y"])
        assert np.array_equal(lazy_ds.targets(), mem_ds.targets())


def test_bad_arrays_are_data_errors():
    run = _run()
    run.eeg[4, 0, 0, 0] = np.nan
    with pytest.raises(DataError, match="NaN.*volume 4"):
        run.check_finite()
    with pytest.raises(DataError, match="volumes × targets"):
        RunArrays(eeg=np.zeros((5, 2, 3, 1)), bold=np.zeros((4, 2)), subject="01")
    with pytest.raises(DataError, match="framewise"):
        _run(fd=np.zeros(3))
    with pytest.raises(DataError, match="mask holds"):
        DataSpec(["a"], [1.0], 1, 2.0, "voxels", 5, mask=np.ones((2, 2, 2), bool))
    spec = DataSpec(["a", "b"], [1.0, 2.0, 3.0], 2, 2.0, "regions", 4)
    with pytest.raises(DataError, match="expected \\(2, 3, 2\\)"):
        spec.check_run(RunArrays(eeg=np.zeros((5, 3, 3, 2)), bold=np.zeros((5, 4)), subject="01"))
    assert DataSpec.from_dict(spec.to_dict()) == spec


def test_readers_turn_derivative_files_into_runs(tmp_path):
    import nibabel as nib

    from bids_eeg2fmri.data.readers import load_run

    rng = np.random.default_rng(0)
    bold = rng.normal(size=(4, 5, 3, 12)).astype(np.float32)
    mask = np.zeros((4, 5, 3), np.uint8)
    mask[1:3, 1:4, :] = 1
    affine = np.diag([4.0, 4.0, 4.0, 1.0])
    img = nib.Nifti1Image(bold, affine)
    img.header.set_zooms((4.0, 4.0, 4.0, 2.0))
    nib.save(img, tmp_path / "bold.nii.gz")
    nib.save(nib.Nifti1Image(mask, affine), tmp_path / "mask.nii.gz")
    spec_rows = rng.normal(size=(10, 3, 4, 2)).astype(np.float32)
    with h5py.File(tmp_path / "spec.h5", "w") as fh:
        fh["spectrogram"] = spec_rows
        fh["channels"] = np.array(["Fz", "Cz", "Pz"], dtype=h5py.string_dtype())
        fh["frequencies"] = np.array([2.0, 4.0, 6.0, 8.0])
        fh["volume_indices"] = np.arange(2, 12)
    # Two non-steady volumes, flagged fMRIPrep-style: the series keeps them, targets do not.
    (tmp_path / "conf.tsv").write_text(
        "framewise_displacement\tnon_steady_state_outlier00\tnon_steady_state_outlier01\n"
        "n/a\t1\t0\n0.1\t0\t1\n" + "0.1\t0\t0\n" * 10)
    run, spec = load_run(tmp_path / "spec.h5", tmp_path / "bold.nii.gz", subject="01",
                         mask=tmp_path / "mask.nii.gz", confounds=tmp_path / "conf.tsv",
                         cache_dir=tmp_path / "cache")
    assert run.retained.tolist() == [False] * 2 + [True] * 10
    assert spec.channels == ["Fz", "Cz", "Pz"] and spec.tr == 2.0 and spec.n_bold == 18
    assert isinstance(run.bold, np.memmap)
    assert np.allclose(run.bold[5], bold[..., 5][mask.astype(bool)])
    assert run.eeg_valid.tolist() == [False] * 2 + [True] * 10
    assert np.array_equal(run.eeg[2], spec_rows[0]) and run.fd[0] == 0.0
    labels = mask.astype(int) + (np.indices(mask.shape)[0] >= 2)
    run_r, spec_r = load_run(tmp_path / "spec.h5", tmp_path / "bold.nii.gz", subject="01",
                             atlas_labels=labels, cache_dir=tmp_path / "cache")
    assert spec_r.target == "regions" and run_r.bold.shape == (12, 2)
    assert np.allclose(run_r.bold[:, 1], bold[labels == 2].mean(axis=0), atol=1e-5)
