"""Our confounds load with nilearn's own fMRIPrep readers, every strategy and component."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from nilearn.interfaces.fmriprep import load_confounds, load_confounds_strategy
from nilearn.maskers import NiftiMasker

from derivsdata import TR, write_outputs

from bids_eeg2fmri.fmri import confounds as conf
from bids_eeg2fmri.fmri import masking
from bids_eeg2fmri.fmri import tissue
from bids_eeg2fmri.fmri.masking import template_mask_on_grid
from bids_eeg2fmri.resources.templates import template_grid

N_T = 120


@pytest.fixture(scope="module")
def run_files(tmp_path_factory):
    """A preproc BOLD on the 4 mm template grid and the confounds our stages write for it."""
    return write_outputs(tmp_path_factory.mktemp("deriv") / "out", res=4, n_volumes=N_T)["bold"]


@pytest.mark.parametrize("strategy", ["simple", "scrubbing", "compcor"])
def test_every_strategy_but_aroma_loads(run_files, strategy):
    confounds, sample_mask = load_confounds_strategy(str(run_files), denoise_strategy=strategy)
    assert len(confounds) == N_T
    assert any(c.startswith("cosine") for c in confounds.columns)
    if strategy == "compcor":
        assert any(c.startswith("a_comp_cor_") for c in confounds.columns)
    # The two non-steady volumes are left out of the sample mask, not out of the table.
    assert sample_mask is not None and 0 not in sample_mask and 1 not in sample_mask
    # nilearn's masker accepts them with our BOLD: the counts agree.
    signals = NiftiMasker(standardize=None).fit_transform(str(run_files), confounds=confounds,
                                          sample_mask=sample_mask)
    assert signals.shape[0] == len(sample_mask)


@pytest.mark.parametrize("kwargs", [
    dict(strategy=("motion",), motion=m) for m in ("basic", "power2", "derivatives", "full")] + [
    dict(strategy=("wm_csf",), wm_csf=m) for m in ("basic", "power2", "derivatives", "full")] + [
    dict(strategy=("global_signal",), global_signal=m)
    for m in ("basic", "power2", "derivatives", "full")] + [
    dict(strategy=("high_pass", "compcor"), compcor=c, n_compcor="all")
    for c in ("anat_combined", "anat_separated", "temporal", "temporal_anat_combined",
              "temporal_anat_separated")] + [
    dict(strategy=("high_pass", "compcor"), compcor="anat_combined", n_compcor=1),
    dict(strategy=("high_pass",)),
    dict(strategy=("scrub",), scrub=0, fd_threshold=0.01, std_dvars_threshold=1.0),
    dict(strategy=("non_steady_state",)),
], ids=str)
def test_every_component_loads(run_files, kwargs):
    confounds, _ = load_confounds(str(run_files), **kwargs)
    if kwargs["strategy"] in (("high_pass",), ("motion",), ("wm_csf",), ("global_signal",),
                              ("high_pass", "compcor")):
        assert confounds is not None and confounds.shape == (N_T, confounds.shape[1])
        assert confounds.shape[1] > 0
    if kwargs["strategy"] == ("high_pass",):
        assert all(c.startswith("cosine") for c in confounds.columns)


def test_compcor_metadata_reads_like_fmriprep(run_files):
    meta = json.loads(run_files.parent.joinpath(
        "sub-01_task-rest_run-1_desc-confounds_timeseries.json").read_text())
    table = pd.read_csv(run_files.parent / "sub-01_task-rest_run-1_desc-confounds_timeseries.tsv",
                        sep="\t", na_values="n/a")
    for prefix, mask in (("a", "combined"), ("c", "CSF"), ("w", "WM")):
        cols = [c for c in meta if c.startswith(f"{prefix}_comp_cor_")]
        assert cols, prefix
        for c in cols:
            assert meta[c]["Method"] == "aCompCor" and meta[c]["Mask"] == mask
            assert meta[c]["Retained"] is True and c in table.columns
        cum = [meta[c]["CumulativeVarianceExplained"] for c in cols]
        assert np.all(np.diff(cum) > 0) and cum[-1] >= tissue.VARIANCE_THRESHOLD
    assert meta["t_comp_cor_00"]["Method"] == "tCompCor"
    # Components are orthonormal time courses.
    a = table[[c for c in table.columns if c.startswith("a_comp_cor_")]].to_numpy()
    assert np.allclose(a.T @ a, np.eye(a.shape[1]), atol=1e-5)


def test_tissue_masks_are_disjoint_and_inside_the_brain():
    shape, affine = template_grid(4)
    mask = template_mask_on_grid(shape, affine)
    masks = tissue.eroded_tissue_masks(mask, affine)
    assert masks["WM"].sum() > 0 and masks["CSF"].sum() > 0
    assert not np.any(masks["WM"] & masks["CSF"])
    assert not np.any(masks["WM"] & ~mask)


def test_compcor_finds_the_shared_signal():
    rng = np.random.default_rng(3)
    signal = np.sin(np.arange(200) / 3.0)
    series = rng.standard_normal((300, 200)) + 5 * rng.standard_normal((300, 1)) * signal
    comps, _ = tissue.compcor(series, 1.0)
    assert abs(np.corrcoef(comps[:, 0], signal)[0, 1]) > 0.95


def test_expansions_by_hand():
    table = tissue.expand(pd.DataFrame({"x": [1.0, 3.0, 2.0]}), ["x"])
    assert np.isnan(table["x_derivative1"][0])
    assert table["x_derivative1"].tolist()[1:] == [2.0, -1.0]
    assert table["x_power2"].tolist() == [1.0, 9.0, 4.0]
    assert table["x_derivative1_power2"].tolist()[1:] == [4.0, 1.0]


def test_rmsd_by_hand():
    params = np.zeros((3, 6))
    params[1, 0] = 1.0                  # 1 mm translation
    params[2, 0] = 1.0
    params[2, 5] = 0.01                 # then a rotation about z
    r = conf.rmsd(params)
    assert np.isnan(r[0])
    assert r[1] == pytest.approx(1.0)
    # R = Rz(θ): ||R - I||_F^2 = 4 (1 - cos θ); the translation part of M2 inv(M1) - I is
    # (R - I) t1 with t1 = (1, 0, 0), of squared norm 2 (1 - cos θ).
    theta = 0.01
    expected = np.sqrt(80.0 ** 2 / 5 * 4 * (1 - np.cos(theta)) + 2 * (1 - np.cos(theta)))
    assert r[2] == pytest.approx(expected)


def test_cosines_are_orthonormal_and_cover_128s():
    cos = tissue.cosine_table(N_T, TR)
    # k < 2 n TR / 128 s
    assert cos.shape[1] == int(np.floor(2 * N_T * TR / 128.0))
    assert np.allclose(cos.to_numpy().T @ cos.to_numpy(), np.eye(cos.shape[1]), atol=1e-10)


def test_preproc_grid_matches_written_bold(run_files):
    img = nib.load(run_files)
    assert img.shape[-1] == N_T


@pytest.mark.parametrize("tr, cutoff", [(2.0, tissue.COMPCOR_HIGH_PASS_HZ), (0.5, 0.0),
                                        (2.0, 0.001)])
def test_high_passed_variance_equals_filtering(tr, cutoff):
    rng = np.random.default_rng(4)
    t = np.arange(150)
    series = (rng.normal(0, 1, (300, 150)) + 3 * np.cos(2 * np.pi * t * tr / 400.0)
              + 0.02 * t + 50).astype(np.float32)
    expected = masking.high_pass(series.astype(np.float64), tr, cutoff).var(axis=1)
    got = tissue.high_passed_variance(series, tr, cutoff, block=64)
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9)


def test_left_singular_vectors_match_lapack_svd():
    rng = np.random.default_rng(5)
    a = rng.normal(size=(40, 3)) @ rng.normal(size=(3, 900)) * [[5.0]] + rng.normal(size=(40, 900))
    u, s = tissue.left_singular_vectors(a)
    ref_u, ref_s, _ = np.linalg.svd(a, full_matrices=False)
    np.testing.assert_allclose(s[:10], ref_s[:10], rtol=1e-8)
    # Up to each vector's sign, which is fixed by the largest-magnitude entry.
    np.testing.assert_allclose(np.abs(u[:, :10]), np.abs(ref_u[:, :10]), atol=1e-8)
    assert (u[np.argmax(np.abs(u[:, :10]), axis=0), np.arange(10)] > 0).all()
    np.testing.assert_allclose(u.T @ u, np.eye(40), atol=1e-8)
