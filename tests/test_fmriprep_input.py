"""``--fmri-derivatives``: fMRIPrep's outputs replace this app's fMRI preprocessing."""

from __future__ import annotations

import json
import logging

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from bids_eeg2fmri.bids.fmriprep import check_fmri_derivatives, find_fmriprep_run
from bids_eeg2fmri.errors import DataError, ExitCode, UserError
from bids_eeg2fmri.fmri.fmriprep import import_fmriprep, leading_non_steady
from bids_eeg2fmri.resources.templates import template_grid

from bidsdata import make_dataset
from fmriprepdata import RES2_ORIGIN, grid, write_description, write_run

TR = 2.0


def _linear_series(affine: np.ndarray, shape=(40, 48, 40), n: int = 8) -> np.ndarray:
    """Signal = 100 + world x (mm) + 2·t inside a box, 0 outside: resampling by world coordinates
    keeps it, resampling by voxel index does not."""
    ijk = np.indices(shape).reshape(3, -1)
    xyz = (affine[:3, :3] @ ijk + affine[:3, 3:4]).reshape((3,) + shape)
    inside = (np.abs(xyz[0]) < 50) & (np.abs(xyz[1] + 20) < 60) & (np.abs(xyz[2] - 10) < 45)
    base = np.where(inside, 100.0 + xyz[0], 0.0)
    return base[..., None] + np.where(inside, 2.0, 0.0)[..., None] * np.arange(n)


def test_discovery_prefers_2009c_res_2_with_sessions(tmp_path, caplog):
    prep = tmp_path / "fmriprep"
    write_description(prep)
    aff2 = grid((20, 24, 20), 2.0, RES2_ORIGIN)
    data = np.ones((20, 24, 20, 4))
    write_run(prep, "sub-01_ses-1_task-rest_run-1", data, aff2, tr=TR, task="rest", res="2")
    write_run(prep, "sub-01_ses-1_task-rest_run-1", np.ones((10, 12, 10, 4)), grid((10, 12, 10)),
              tr=TR, task="rest", res=None)
    write_run(prep, "sub-01_ses-1_task-rest_run-1", data, aff2, tr=TR, task="rest",
              space="MNI152NLin6Asym", res="2")
    raw = tmp_path / "raw/sub-01/ses-1/func/sub-01_ses-1_task-rest_run-01_bold.nii.gz"
    got = find_fmriprep_run(raw, prep)
    assert got.space == "MNI152NLin2009cAsym" and got.res == "2"
    assert got.bold.name == ("sub-01_ses-1_task-rest_run-1_space-MNI152NLin2009cAsym_res-2_"
                             "desc-preproc_bold.nii.gz")
    assert got.mask.name.endswith("_res-2_desc-brain_mask.nii.gz")
    assert got.confounds.name == "sub-01_ses-1_task-rest_run-1_desc-confounds_timeseries.tsv"
    assert got.boldref.name.endswith("_res-2_boldref.nii.gz")
    # another session, or a run the raw lacks, is not this run
    assert find_fmriprep_run(tmp_path / "sub-01_ses-2_task-rest_run-1_bold.nii.gz", prep) is None
    assert find_fmriprep_run(tmp_path / "sub-01_ses-1_task-rest_bold.nii.gz", prep) is None
    # a run without fMRIPrep outputs is preprocessed by this app, with a warning
    other = tmp_path / "sub-02_task-rest_bold.nii.gz"
    with caplog.at_level(logging.WARNING, logger="bids_eeg2fmri"):
        found = check_fmri_derivatives(prep, [raw, other])
    assert found[other] is None and found[raw].res == "2"
    assert "sub-02_task-rest_bold.nii.gz: no fMRIPrep desc-preproc_bold" in caplog.text
    with pytest.raises(UserError, match="matches any selected BOLD run") as exc:
        check_fmri_derivatives(prep, [tmp_path / "sub-02_task-rest_bold.nii.gz"])
    assert exc.value.code == ExitCode.NO_INPUT


def test_incomplete_outputs_are_one_line_errors(tmp_path):
    prep = tmp_path / "fmriprep"
    write_run(prep, "sub-01_task-rest", np.ones((10, 12, 10, 4)), grid((10, 12, 10)), tr=TR,
              task="rest", with_mask=False)
    with pytest.raises(DataError, match="has no .*desc-brain_mask.nii.gz beside it") as exc:
        find_fmriprep_run(tmp_path / "sub-01_task-rest_bold.nii.gz", prep)
    assert exc.value.code == ExitCode.DATA and "\n" not in str(exc.value)


def test_import_resamples_by_world_coordinates_and_keeps_non_steady_volumes_flagged(tmp_path):
    prep = tmp_path / "fmriprep"
    aff = grid((40, 48, 40), 3.0, (-60.0, -90.0, -50.0))  # a grid unlike ours
    data = _linear_series(aff, n=8)
    bold = write_run(prep, "sub-01_task-rest", data, aff, tr=TR, task="rest", res=None,
                     non_steady=2)
    run = find_fmriprep_run(tmp_path / "sub-01_task-rest_bold.nii.gz", prep)
    conf = pd.read_csv(run.confounds, sep="\t", na_values=["n/a"])
    assert leading_non_steady(conf) == 2
    out = tmp_path / "work"
    out.mkdir()
    res = import_fmriprep(run.as_dict(), out, output_res=4, model_res=4)
    img = nib.load(res["preproc"])
    shape, affine = template_grid(4)
    assert img.shape == shape + (8,) and np.allclose(img.affine, affine)
    assert img.header.get_zooms()[3] == pytest.approx(TR)
    mask = np.asarray(nib.load(res["mask"]).dataobj) > 0
    vals = np.asarray(img.dataobj)
    ijk = np.argwhere(mask)
    xyz = ijk @ affine[:3, :3].T + affine[:3, 3]
    # well inside the box (spline ringing at its edges dies out over a few voxels): the
    # resampled signal is 100 + x + 2·t, every volume kept
    deep = (np.abs(xyz[:, 0]) < 30) & (np.abs(xyz[:, 1] + 20) < 40) & (np.abs(xyz[:, 2] - 10) < 25)
    assert deep.sum() > 100
    got = vals[tuple(ijk[deep].T)]
    want = 100 + xyz[deep, :1] + 2 * np.arange(8)
    np.testing.assert_allclose(got, want, atol=0.05)
    table = pd.read_csv(res["confounds"], sep="\t", na_values=["n/a"])
    assert len(table) == 8 and np.isnan(table["framewise_displacement"][0])
    np.testing.assert_allclose(table["trans_x"], conf["trans_x"])
    assert leading_non_steady(table) == 2  # fMRIPrep's flags carried over
    meta = res["metadata"]
    assert meta["NonSteadyStateVolumes"] == 2 and meta["RepetitionTime"] == TR
    assert "NumberOfVolumesDiscardedByUser" not in meta
    assert meta["SourceSpace"] == "MNI152NLin2009cAsym" and meta["SkullStripped"] is False
    assert meta["SpatialReference"] == "MNI152NLin2009aSym" and meta["TaskName"] == "rest"
    model = nib.load(res["model"])
    mdata = np.asarray(model.dataobj)
    assert mdata.shape[3] == 8
    inside = mdata[..., 2:].std(axis=3) > 0
    assert inside.sum() > 50
    # z-scored over the steady-state volumes (the flagged ones are left out of the fit)
    np.testing.assert_allclose(mdata[inside][:, 2:].mean(axis=1), 0, atol=1e-4)
    np.testing.assert_allclose(mdata[inside][:, 2:].std(axis=1), 1, atol=1e-3)
    # --dummy-scans replaces fMRIPrep's flags by its own count
    out2 = tmp_path / "work2"
    out2.mkdir()
    assert import_fmriprep(run.as_dict(), out2, output_res=4, dummy_scans=3)["metadata"][
        "NonSteadyStateVolumes"] == 3
    assert nib.load(out2 / "preproc_bold.nii.gz").shape[3] == 8
    assert leading_non_steady(pd.read_csv(out2 / "confounds.tsv", sep="\t")) == 3
    # confounds of another length are refused, naming the file
    pd.read_csv(run.confounds, sep="\t").iloc[:5].to_csv(run.confounds, sep="\t", index=False)
    with pytest.raises(DataError, match="confounds have 5 rows, the BOLD 8 volumes") as exc:
        import_fmriprep(run.as_dict(), out2, output_res=4)
    assert str(run.confounds) in str(exc.value)
    assert bold.exists()


@pytest.mark.slow
def test_participant_level_takes_fmriprep_outputs(tmp_path, capsys):
    """The CLI with --fmri-derivatives writes our BOLD derivatives from fMRIPrep's files and
    skips head motion and registration."""
    from bids_eeg2fmri.cli.run import main

    ds = make_dataset(tmp_path / "ds", ("01", "02"))
    prep = tmp_path / "derivatives" / "fmriprep"
    write_description(prep)
    aff = grid((40, 48, 40), 4.0)
    write_run(prep, "sub-01_task-rest_run-1", _linear_series(aff, n=12), aff, tr=TR, task="rest",
              res=None, non_steady=1)
    out = tmp_path / "out"
    code = main([str(ds), str(out), "participant", "--skip-bids-validation", "-w",
                 str(tmp_path / "work"), "--fmri-derivatives", str(prep),
                 "--participant-label", "01", "--registration", "affine", "--output-res", "4",
                 "--model-ready", "--nprocs", "1"])
    assert code == 0, capsys.readouterr().err
    func = out / "sub-01" / "func"
    stem = "sub-01_task-rest_run-1_space-MNI152NLin2009aSym_res-4"
    for name in (f"{stem}_desc-preproc_bold.nii.gz", f"{stem}_desc-brain_mask.nii.gz",
                 f"{stem}_boldref.nii.gz", "sub-01_task-rest_run-1_desc-confounds_timeseries.tsv",
                 "sub-01_task-rest_run-1_space-MNI152NLin2009aSym_res-4_desc-model_bold.nii.gz"):
        assert (func / name).exists(), name
    assert not list(func.glob("*_xfm.*")), "our head motion / registration must not run"
    meta = json.loads((func / f"{stem}_desc-preproc_bold.json").read_text())
    assert meta["SourceSpace"] == "MNI152NLin2009cAsym"
    assert meta["NonSteadyStateVolumes"] == 1
    assert nib.load(func / f"{stem}_desc-preproc_bold.nii.gz").shape[3] == 12
    assert (out / "sub-01" / "eeg").is_dir()  # the EEG half ran as usual
    # the report was written for this participant; the methods text credits fMRIPrep
    assert (out / "sub-01.html").exists()
    citation = (out / "logs" / "CITATION.md").read_text()
    assert "preprocessed with fMRIPrep" in citation and "Esteban O et al. (2019)" in citation
