"""The nipype workflow end to end on a small synthetic run: names, sidecars, contents."""

from __future__ import annotations

import json
import os
import tempfile

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from bids_eeg2fmri.config import Config
from bids_eeg2fmri.workflows.fmri import init_fmri_preproc_wf
from fmri_synth import make_series, write_bids_bold


@pytest.mark.slow
def test_workflow_writes_bids_derivatives(tmp_path):
    syn = make_series(shape=(32, 32, 20), zooms=(6.0, 6.5, 7.0), n_vols=14, dummy=2, seed=11)
    st = [0.0, 1.0, 0.1, 1.1, 0.2, 1.2, 0.3, 1.3, 0.4, 1.4, 0.5, 1.5, 0.6, 1.6, 0.7, 1.7, 0.8,
          1.8, 0.9, 1.9]
    meta = {"RepetitionTime": 2.0, "SliceTiming": st, "TaskName": "rest"}
    bold = write_bids_bold(tmp_path / "raw" / "sub-01" / "func" / "sub-01_task-rest_bold.nii.gz",
                           syn.data, syn.affine, meta)
    config = Config.from_sources({"output_dir": str(tmp_path / "out"), "registration": "affine",
                                  "output_res": 4, "model_ready": True, "omp_nthreads": 1})
    wf = init_fmri_preproc_wf(config=config, metadata=meta)
    wf.base_dir = str(tmp_path / "work")
    wf.inputs.inputnode.bold_file = str(bold)
    before = set(os.listdir(tempfile.gettempdir()))
    wf.run(plugin="Linear")
    assert not {n for n in set(os.listdir(tempfile.gettempdir())) - before
                if n.startswith("bids_eeg2fmri-ants-")}

    func = tmp_path / "out" / "sub-01" / "func"
    names = sorted(p.name for p in func.iterdir())
    src = "sub-01_task-rest"
    expected = [
        f"{src}_desc-confounds_timeseries.json", f"{src}_desc-confounds_timeseries.tsv",
        f"{src}_from-boldref_to-MNI152NLin2009aSym_mode-image_xfm.json",
        f"{src}_from-boldref_to-MNI152NLin2009aSym_mode-image_xfm.nii.gz",
        f"{src}_from-orig_to-boldref_mode-image_desc-hmc_xfm.txt",
        f"{src}_space-MNI152NLin2009aSym_res-4_desc-brain_mask.json",
        f"{src}_space-MNI152NLin2009aSym_res-4_desc-brain_mask.nii.gz",
        f"{src}_space-MNI152NLin2009aSym_res-4_desc-model_bold.json",
        f"{src}_space-MNI152NLin2009aSym_res-4_desc-model_bold.nii.gz",
        f"{src}_space-MNI152NLin2009aSym_res-4_desc-preproc_bold.json",
        f"{src}_space-MNI152NLin2009aSym_res-4_desc-preproc_bold.nii.gz",
        f"{src}_space-boldref_boldref.json", f"{src}_space-boldref_boldref.nii.gz",
    ]
    assert names == expected

    side = json.loads((func / f"{src}_space-MNI152NLin2009aSym_res-4_desc-preproc_bold.json").read_text())
    assert side["RepetitionTime"] == 2.0 and side["SliceTimingCorrected"] is True
    assert side["StartTime"] == pytest.approx(1.0) and side["SkullStripped"] is True
    # The two dummy scans are flagged, not removed: nothing was discarded.
    assert side["NonSteadyStateVolumes"] == 2 and side["DummyScans"]["Count"] == 2
    assert "NumberOfVolumesDiscardedByUser" not in side
    assert side["Sources"] == ["bids:raw:sub-01/func/sub-01_task-rest_bold.nii.gz"]
    assert side["Registration"]["Method"] == "affine"

    preproc = nib.load(func / f"{src}_space-MNI152NLin2009aSym_res-4_desc-preproc_bold.nii.gz")
    mask = nib.load(func / f"{src}_space-MNI152NLin2009aSym_res-4_desc-brain_mask.nii.gz")
    assert preproc.shape == (50, 59, 48, 14) and preproc.header.get_zooms()[3] == 2.0
    data = np.asarray(preproc.dataobj)
    m = np.asarray(mask.dataobj) > 0
    assert m.sum() > 10000 and np.all(data[~m] == 0) and np.all(data[m].mean(axis=-1) > 0)
    model = np.asarray(nib.load(func / f"{src}_space-MNI152NLin2009aSym_res-4_desc-model_bold.nii.gz").dataobj)
    assert model.shape[-1] == 14
    # Trend and scaling come from the steady-state volumes: those are z-scored.
    inside = model[m][:, 2:]
    np.testing.assert_allclose(inside.mean(axis=-1), 0, atol=1e-4)
    np.testing.assert_allclose(inside.std(axis=-1), 1, atol=1e-3)
    hmc = (func / f"{src}_from-orig_to-boldref_mode-image_desc-hmc_xfm.txt").read_text()
    assert hmc.count("Transform:") == 14

    conf = pd.read_csv(func / f"{src}_desc-confounds_timeseries.tsv", sep="\t", na_values="n/a")
    assert len(conf) == 14 and np.isnan(conf["framewise_displacement"][0])
    flags = conf.filter(like="non_steady_state_outlier")
    assert list(flags.columns) == ["non_steady_state_outlier00", "non_steady_state_outlier01"]
    assert flags.to_numpy().tolist() == np.eye(14)[:, :2].tolist()
    assert conf[["trans_x", "rot_z", "dvars"]].iloc[1:].notna().all().all()
    # nilearn's own fMRIPrep readers take the workflow's confounds with its preproc BOLD.
    from nilearn.interfaces.fmriprep import load_confounds_strategy

    bold_out = func / f"{src}_space-MNI152NLin2009aSym_res-4_desc-preproc_bold.nii.gz"
    for strategy in ("simple", "scrubbing", "compcor"):
        loaded, sample_mask = load_confounds_strategy(str(bold_out), denoise_strategy=strategy)
        assert len(loaded) == preproc.shape[-1]
        if strategy != "scrubbing":
            assert sample_mask.tolist() == list(range(2, 14))
        else:
            assert 0 not in sample_mask and 1 not in sample_mask
    assert {"global_signal", "csf", "white_matter", "rmsd", "a_comp_cor_00",
            "t_comp_cor_00"} <= set(conf.columns)
