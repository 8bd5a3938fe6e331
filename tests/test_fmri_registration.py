"""Registration to MNI, the displacement-field form, one-shot resampling and masks."""

from __future__ import annotations

import os
import tempfile

import nibabel as nib
import numpy as np
import pytest

from bids_eeg2fmri.fmri import motion, registration, resample
from bids_eeg2fmri.fmri.antsutil import to_ants
from bids_eeg2fmri.fmri.masking import high_pass, refine_mask, template_mask_on_grid
from bids_eeg2fmri.resources.templates import load_mask, template_grid
from fmri_synth import make_series


def _dice(a, b):
    return 2.0 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


@pytest.fixture(scope="module")
def affine_case(tmp_path_factory):
    """A still synthetic subject (known template→subject transform) registered with 'affine'."""
    syn = make_series(shape=(40, 40, 26), zooms=(5.0, 5.0, 6.0), n_vols=1, noise=2.0, seed=7)
    ref = syn.data[..., 0]
    field = tmp_path_factory.mktemp("reg") / "field.nii.gz"
    before = set(os.listdir(tempfile.gettempdir()))
    settings = registration.register_to_template(ref, syn.affine, field, method="affine")
    leftovers = set(os.listdir(tempfile.gettempdir())) - before
    return syn, ref, field, settings, leftovers


def test_affine_registration_recovers_subject_transform(affine_case):
    syn, ref, field_path, settings, leftovers = affine_case
    assert not {n for n in leftovers if n.startswith(("bids_eeg2fmri-ants-", "tmp"))}
    assert settings["Method"] == "affine" and settings["Template"] == "MNI152NLin2009aSym"
    field, faff = registration.load_field(field_path)
    brain = np.asarray(load_mask("brain", 2).dataobj) > 0
    pts = resample.grid_points(brain, load_mask("brain", 2).affine)
    est = registration.template_to_boldref(pts, field, faff)
    true = (syn.subject @ np.column_stack([pts, np.ones(len(pts))]).T)[:3].T
    err = np.linalg.norm(est - true, axis=1)
    # 5×5×6 mm EPI voxels: the brain lands within about half a voxel.
    assert np.median(err) < 2.0 and np.percentile(err, 90) < 3.5


def test_field_resampling_matches_ants_apply_transforms(affine_case):
    import ants

    syn, ref, field_path, _, _ = affine_case
    shape, aff = template_grid(2)
    brain = template_mask_on_grid(shape, aff)
    field, faff = registration.load_field(field_path)
    mine = resample.unmask(resample.resample_series(ref[..., None], syn.affine, None, field, faff,
                                                    brain, aff, order=1)[:, 0], brain)
    theirs = ants.apply_transforms(to_ants(np.zeros(shape, np.float32), aff),
                                   to_ants(ref, syn.affine), [os.fspath(field_path)],
                                   interpolator="linear").numpy()
    assert np.corrcoef(mine[brain], theirs[brain])[0, 1] > 0.999


def test_one_shot_resampling_undoes_head_motion(affine_case):
    syn, ref, field_path, _, _ = affine_case
    field, faff = registration.load_field(field_path)
    shape, aff = template_grid(4)
    brain = template_mask_on_grid(shape, aff)
    # Move the head: volume i shows the reference displaced by M_i.
    params = np.array([[0, 0, 0, 0, 0, 0], [2.0, -1.5, 1.0, 0.03, -0.02, 0.04]])
    c = motion.grid_center(ref.shape, syn.affine)
    mats = motion.params_to_matrices(params, c)
    moved = np.stack([ref, motion.resample_rigid(ref, syn.affine, np.linalg.inv(mats[1]))], -1)
    corrected = resample.resample_series(moved, syn.affine, mats, field, faff, brain, aff)
    uncorrected = resample.resample_series(moved, syn.affine, None, field, faff, brain, aff)
    inside = corrected[:, 0] > 100
    r_corr = np.corrcoef(corrected[inside, 0], corrected[inside, 1])[0, 1]
    r_unc = np.corrcoef(uncorrected[inside, 0], uncorrected[inside, 1])[0, 1]
    assert r_corr > 0.95 and r_corr > r_unc + 0.05, (r_corr, r_unc)


def test_masks_on_every_output_grid():
    volumes = []
    for res in (1, 2, 3, 4):
        shape, aff = template_grid(res)
        m = template_mask_on_grid(shape, aff)
        volumes.append(m.sum() * res ** 3)
    assert np.ptp(volumes) / np.mean(volumes) < 0.01  # the same brain volume on every grid
    keep = refine_mask(np.ones(5, bool), np.array([0.0, 10.0, 900.0, 1000.0, 1100.0]))
    assert keep.tolist() == [False, False, True, True, True]


def test_high_pass_removes_slow_drift_keeps_mean():
    t = np.arange(200) * 2.0
    slow = np.cos(2 * np.pi * t / 400.0)
    fast = np.sin(2 * np.pi * t / 20.0)
    out = high_pass(np.stack([100 + slow + fast]), 2.0, 0.01)[0]
    assert out.mean() == pytest.approx(100, abs=1e-6)
    assert np.corrcoef(out - 100, fast)[0, 1] > 0.99


@pytest.mark.slow
def test_real_epi_registers_inside_template_brain(realdata, tmp_path):
    path = realdata / "bold" / "dcm_qa_stc" / "Siemens_FMRI_AX_ASC_2.nii"
    img = nib.load(path)
    ref = np.asarray(img.dataobj, dtype=np.float32).mean(axis=-1)
    mask = registration.epi_brain_mask(ref, img.affine)
    registration.register_to_template(ref, img.affine, tmp_path / "f.nii.gz", method="syn-quick",
                                      brain_mask=mask)
    shape, aff = template_grid(2)
    warped = registration.boldref_to_template_mask(mask, img.affine, tmp_path / "f.nii.gz",
                                                   shape, aff) > 0.5
    brain = template_mask_on_grid(shape, aff)
    inside = np.logical_and(warped, brain).sum() / warped.sum()
    print(f"real EPI in MNI: {inside:.3f} inside the template brain mask, Dice {_dice(warped, brain):.3f}")
    assert inside > 0.9, inside
    assert _dice(warped, brain) > 0.8
