"""Non-steady-state volumes are kept in every derivative and flagged, never cut off.

"Today" below is the former behaviour: the dummy scans cut off before any processing. Cutting a
run and processing it with ``dummy_scans=0`` reproduces it exactly, so the steady-state part of
every output must equal what the cut run gives, while the outputs keep the full run's count.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from derivsdata import STEM, write_outputs
from fmri_synth import make_series, write_bids_bold

from bids_eeg2fmri.fmri import stages
from bids_eeg2fmri.fmri.antsutil import itk_text
from bids_eeg2fmri.fmri.model_ready import model_ready
from bids_eeg2fmri.resources.templates import template_grid

# 21 steady volumes of 3.2 s: longer than the 128 s CompCor high-pass period, so there is a cosine.
N_VOLS, N_DUMMY, TR = 24, 3, 3.2
# Interleaved acquisition of the 20 slices: slice-timing correction has work to do.
SLICE_TIMING = [float(t) for t in np.r_[np.arange(10) * 0.2, np.arange(10) * 0.2 + 0.1]]


def test_model_ready_fits_on_the_steady_volumes_only():
    rng = np.random.default_rng(0)
    series = rng.normal(100, 5, (30, 40)) + np.linspace(0, 20, 40)
    series[:, :3] += 60  # saturation overshoot
    steady = np.arange(40) >= 3
    got = model_ready(series, sample_mask=steady)
    assert got.shape == (30, 40)
    np.testing.assert_allclose(got[:, 3:], model_ready(series[:, 3:]), atol=1e-5)
    # The overshoot stays visible (extrapolated trend), it is not zeroed or cut.
    assert np.all(got[:, :3].mean(axis=0) > 5)
    with pytest.raises(ValueError, match="sample_mask"):
        model_ready(series, sample_mask=steady[:-1])


def test_match_brightness_scales_only_the_leading_volumes():
    from bids_eeg2fmri.fmri.dummy import match_brightness

    rng = np.random.default_rng(1)
    head = np.zeros((12, 12, 8), np.float32)
    head[3:9, 3:9, 2:6] = 1000.0
    data = head[..., None] + rng.normal(0, 5, (12, 12, 8, 10)).astype(np.float32)
    data[..., 0] *= 1.8
    data[..., 1] *= 1.3
    steady = data[..., 2:].copy()
    out = match_brightness(data, 2)
    inside = head > 0
    level = np.median(steady.mean(axis=-1)[inside])
    for t in (0, 1):
        assert np.median(out[..., t][inside]) == pytest.approx(level, rel=1e-3)
    np.testing.assert_array_equal(out[..., 2:], steady)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One run with 3 dummy scans, and the same run with them cut off (today's input)."""
    root = tmp_path_factory.mktemp("nonsteady")
    syn = make_series(shape=(32, 32, 20), zooms=(6.0, 6.5, 7.0), n_vols=N_VOLS, dummy=N_DUMMY,
                      seed=4, repetition_time=TR)
    meta = {"RepetitionTime": TR, "SliceTiming": SLICE_TIMING, "TaskName": "rest"}
    full = write_bids_bold(root / "full" / "sub-01_task-rest_bold.nii.gz", syn.data, syn.affine,
                           meta)
    cut = write_bids_bold(root / "cut" / "sub-01_task-rest_bold.nii.gz",
                          syn.data[..., N_DUMMY:], syn.affine, meta)
    info = stages.prepare(full, root / "full_stc.nii", metadata=meta)
    info_cut = stages.prepare(cut, root / "cut_stc.nii", metadata=meta, dummy_scans=0)
    return {"root": root, "syn": syn, "full": full, "cut": cut, "info": info,
            "info_cut": info_cut}


def _data(path) -> np.ndarray:
    return np.asarray(nib.load(path).dataobj, dtype=np.float32)


def test_prepare_keeps_every_volume_and_corrects_only_the_steady_ones(runs):
    info, root = runs["info"], runs["root"]
    assert info["dummy_source"] == "auto" and info["dummy_scans"] == N_DUMMY
    assert info["n_volumes"] == N_VOLS and info["slice_timing_corrected"]
    full, cut = _data(root / "full_stc.nii"), _data(root / "cut_stc.nii")
    assert full.shape[3] == N_VOLS
    np.testing.assert_allclose(full[..., N_DUMMY:], cut, rtol=1e-5, atol=1e-3)
    # The non-steady volumes pass through slice-timing correction untouched (3dTshift -ignore).
    np.testing.assert_array_equal(full[..., :N_DUMMY], runs["syn"].data[..., :N_DUMMY])
    # The user's --dummy-scans still wins over the detection.
    assert stages.prepare(runs["full"], root / "user.nii", dummy_scans=1)["dummy_scans"] == 1
    meta = stages.sidecar("preproc", source_file=runs["full"], info=info)
    assert meta["NonSteadyStateVolumes"] == N_DUMMY and meta["DummyScans"]["Count"] == N_DUMMY
    assert "NumberOfVolumesDiscardedByUser" not in meta


@pytest.mark.slow
def test_head_motion_registers_every_volume_to_a_steady_state_reference(runs):
    root, syn = runs["root"], runs["syn"]
    (root / "hmc_full").mkdir()
    (root / "hmc_cut").mkdir()
    new = stages.head_motion(runs["full"], root / "hmc_full", skip=N_DUMMY)
    old = stages.head_motion(runs["cut"], root / "hmc_cut")
    p_new = np.loadtxt(new["motion_params"], skiprows=1)
    p_old = np.loadtxt(old["motion_params"], skiprows=1)
    assert p_new.shape == (N_VOLS, 6)
    assert (Path(new["hmc_xfm"]).read_text().count("Transform:")) == N_VOLS
    np.testing.assert_allclose(_data(new["boldref"]), _data(old["boldref"]), atol=1e-3)
    np.testing.assert_allclose(p_new[N_DUMMY:], p_old, atol=2e-3)
    # The bright non-steady volumes are registered as well as the steady ones: the error
    # against the true motion (up to the reference's constant pose) is of the same size.
    err = p_new - syn.params
    err -= np.median(err[N_DUMMY:], axis=0)
    assert np.abs(err[:N_DUMMY, :3]).max() < 3 * np.abs(err[N_DUMMY:, :3]).max() + 0.05
    assert np.abs(err[:N_DUMMY, 3:]).max() < 3 * np.abs(err[N_DUMMY:, 3:]).max() + 1e-3


@pytest.fixture(scope="module")
def resampled(runs):  # about a minute on two cores: its tests are marked slow
    """Both runs resampled with identity head motion and a zero warp (same mask for both)."""
    root = runs["root"]
    shape, affine = template_grid(4)
    field = root / "field.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros(shape + (1, 3), np.float32), affine), field)
    out = {}
    for name, n, skip in (("full", N_VOLS, N_DUMMY), ("cut", N_VOLS - N_DUMMY, 0)):
        hmc = root / f"{name}_identity.txt"
        hmc.write_text(itk_text(np.repeat(np.eye(4)[None], n, axis=0)))
        work = root / f"res_{name}"
        work.mkdir()
        out[name] = stages.resample(root / f"{name}_stc.nii", hmc, field, work, output_res=4,
                                    model_res=4, high_pass=0.02, n_non_steady=skip)
    return out


@pytest.mark.slow
def test_resampled_outputs_keep_the_count_and_match_the_cut_run(resampled):
    new, old = resampled["full"], resampled["cut"]
    np.testing.assert_array_equal(_data(new["mask"]), _data(old["mask"]))
    m = _data(new["mask"]) > 0
    for kind in ("preproc", "model"):
        a, b = _data(new[kind]), _data(old[kind])
        assert a.shape[3] == N_VOLS and b.shape[3] == N_VOLS - N_DUMMY
        tol = 1e-3 if kind == "preproc" else 1e-4
        np.testing.assert_allclose(a[m][:, N_DUMMY:], b[m], rtol=1e-5, atol=tol)
    ta = pd.read_csv(new["tissue"], sep="\t", na_values="n/a")
    tb = pd.read_csv(old["tissue"], sep="\t", na_values="n/a")
    assert len(ta) == N_VOLS and list(ta.columns) == list(tb.columns)
    # CompCor and the cosine basis come from the steady-state volumes; zero rows before them
    # (nipype's CompCor(ignore_initial_volumes=...) pads the same way).
    fitted = [c for c in ta.columns if "comp_cor" in c or c.startswith("cosine")]
    assert any(c.startswith("a_comp_cor") for c in fitted) and "cosine00" in fitted
    np.testing.assert_allclose(ta[fitted].iloc[N_DUMMY:], tb[fitted], atol=1e-5)
    assert (ta[fitted].iloc[:N_DUMMY] == 0).all().all()
    # Mean signals cover every volume; after the first steady volume's derivative they agree.
    np.testing.assert_allclose(ta["global_signal"].iloc[N_DUMMY:], tb["global_signal"], rtol=1e-5)
    assert ta["global_signal"].iloc[:N_DUMMY].min() > ta["global_signal"].iloc[N_DUMMY:].max()
    assert len(np.loadtxt(new["dvars"], skiprows=1)) == N_VOLS


@pytest.mark.slow
def test_confounds_flag_the_volumes_nilearn_leaves_out(runs, resampled, tmp_path):
    from nilearn.interfaces.fmriprep import load_confounds, load_confounds_strategy

    new = resampled["full"]
    params = np.zeros((N_VOLS, 6))
    params_file = tmp_path / "params.tsv"
    np.savetxt(params_file, params, delimiter="\t", header="\t".join(
        ["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"]), comments="")
    conf = stages.confounds(params_file, new["dvars"], tmp_path, tissue_file=new["tissue"],
                            tissue_meta=new["tissue_meta"], n_non_steady=N_DUMMY)
    func = tmp_path / "deriv" / "sub-01" / "func"
    func.mkdir(parents=True)
    bold = func / "sub-01_task-rest_space-MNI152NLin2009aSym_res-4_desc-preproc_bold.nii.gz"
    shutil.copy(new["preproc"], bold)
    shutil.copy(conf["tsv"], func / "sub-01_task-rest_desc-confounds_timeseries.tsv")
    shutil.copy(conf["json"], func / "sub-01_task-rest_desc-confounds_timeseries.json")
    table = pd.read_csv(conf["tsv"], sep="\t", na_values="n/a")
    flags = table.filter(like="non_steady_state_outlier")
    assert len(table) == N_VOLS == nib.load(bold).shape[3]
    assert flags.to_numpy().tolist() == np.eye(N_VOLS)[:, :N_DUMMY].tolist()
    steady = list(range(N_DUMMY, N_VOLS))
    for strategy in ("simple", "compcor"):
        loaded, sample_mask = load_confounds_strategy(str(bold), denoise_strategy=strategy)
        assert len(loaded) == N_VOLS and sample_mask.tolist() == steady
    loaded, sample_mask = load_confounds(str(bold), strategy=("high_pass", "motion"))
    assert sample_mask.tolist() == steady and "cosine00" in loaded


# ----------------------------------------------------------------------------- group level
def _as_today(new: Path, old: Path, n_dummy: int) -> None:
    """``old``: ``new``'s derivatives with the first ``n_dummy`` volumes cut off, as they were."""
    shutil.copytree(new, old)
    func = old / "sub-01" / "func"
    bold = next(func.glob("*_desc-preproc_bold.nii.gz"))
    img = nib.load(bold)
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj)[..., n_dummy:], img.affine, img.header), bold)
    meta = json.loads(bold.with_name(bold.name.replace(".nii.gz", ".json")).read_text())
    meta.pop("NonSteadyStateVolumes")
    meta["NumberOfVolumesDiscardedByUser"] = n_dummy
    bold.with_name(bold.name.replace(".nii.gz", ".json")).write_text(json.dumps(meta))
    conf = func / f"{STEM}_desc-confounds_timeseries.tsv"
    table = pd.read_csv(conf, sep="\t", na_values="n/a").iloc[n_dummy:]
    table = table.drop(columns=[c for c in table if c.startswith("non_steady")])
    table.loc[table.index[0], "framewise_displacement"] = np.nan
    table.to_csv(conf, sep="\t", index=False, na_rep="n/a")


def test_group_windows_leave_out_the_flagged_volumes(tmp_path):
    from bids_eeg2fmri.data.windows import SequenceSpec, WindowSpec, index_samples
    from bids_eeg2fmri.group.collect import collect_directions
    from bids_eeg2fmri.group.runfiles import find_runs

    n_dummy, n_vols = 2, 40
    new = tmp_path / "new"
    files = write_outputs(new, res=4, n_volumes=n_vols, n_non_steady=n_dummy)
    files["bold"].with_name(files["bold"].name.replace(".nii.gz", ".json")).write_text(
        json.dumps({"RepetitionTime": 2.0, "NonSteadyStateVolumes": n_dummy}))
    _as_today(new, tmp_path / "old", n_dummy)
    opts = dict(res=4, target="voxels")
    got = {name: collect_directions(find_runs(tmp_path / name), ["eeg2fmri", "fmri2eeg"],
                                    cache_dir=tmp_path / f"cache_{name}", **opts)
           for name in ("new", "old")}
    # EEG → fMRI: no target is flagged and no EEG window reaches into a flagged volume.
    spec = WindowSpec(window=4)
    run_new, run_old = got["new"]["eeg2fmri"].runs[0], got["old"]["eeg2fmri"].runs[0]
    assert run_new.n_volumes == n_vols and run_old.n_volumes == n_vols - n_dummy
    assert run_new.retained.tolist() == [False] * n_dummy + [True] * (n_vols - n_dummy)
    v_new = index_samples([run_new], spec)["volume"].to_numpy()
    v_old = index_samples([run_old], spec)["volume"].to_numpy() + n_dummy
    # A flagged volume is absent in both modalities: exactly the samples of the cut run.
    assert v_new.min() >= n_dummy
    np.testing.assert_array_equal(v_new, v_old)
    np.testing.assert_allclose(np.asarray(run_new.bold)[v_old],
                               np.asarray(run_old.bold)[v_old - n_dummy], atol=1e-5)
    np.testing.assert_array_equal(run_new.eeg[n_dummy:], run_old.eeg)
    # fMRI → EEG: BOLD windows never hold a flagged volume, so the samples are today's.
    seq = SequenceSpec(window=6, horizon=2)
    f_new = index_samples(got["new"]["fmri2eeg"].runs, seq)["volume"].to_numpy()
    f_old = index_samples(got["old"]["fmri2eeg"].runs, seq)["volume"].to_numpy() + n_dummy
    np.testing.assert_array_equal(f_new, f_old)
    np.testing.assert_allclose(np.asarray(got["new"]["fmri2eeg"].runs[0].bold)[n_dummy:],
                               np.asarray(got["old"]["fmri2eeg"].runs[0].bold), atol=1e-5)
