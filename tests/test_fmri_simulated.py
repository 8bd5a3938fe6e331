"""Acceptance tests of issue 4 on simulator data, measured against its ground truth.

One realistic-grid run (64×64×30 at 3.3×3.3×4 mm, interleaved slices, 3 dummy scans, motion) is
simulated and preprocessed once per module with the same stage functions the workflow runs.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("bids_eeg2fmri.simulate")

from bids_eeg2fmri.fmri import motion, registration, stages  # noqa: E402
from bids_eeg2fmri.fmri.masking import high_pass, template_mask_on_grid  # noqa: E402
from bids_eeg2fmri.fmri.slice_timing import slice_time_correct  # noqa: E402
from bids_eeg2fmri.resources.templates import template_grid  # noqa: E402

pytestmark = pytest.mark.slow
N_VOLUMES = 60


def _params(**kw):
    from bids_eeg2fmri.simulate import SimulationParams

    # The slab is planned on the brain (``slab_follows_head``), as a real whole-brain EPI is:
    # with the tilt taken from the scanner's axes this subject's 120 mm slab sits 21° off the
    # brain and acquires only 36 % of the left temporal pole, one of the driven regions.
    base = dict(subjects=1, volumes=N_VOLUMES, grid=(64, 64, 30), voxel_size=(3.3, 3.3, 4.0),
                channels=8, sfreq=250.0, seed=3, motion_scale=3.0, slab_follows_head=True)
    base.update(kw)
    return SimulationParams(**base)


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    from bids_eeg2fmri.simulate import load_ground_truth, simulate_dataset

    root = tmp_path_factory.mktemp("sim")
    result = simulate_dataset(root / "bids", _params())
    truth = load_ground_truth(result.bids_dir, "01")
    bold = result.runs[0].bold
    work = root / "work"
    work.mkdir()
    info = stages.prepare(bold, work / "stc.nii")
    hm = stages.head_motion(bold, work, n_procs=1, skip=info["dummy_scans"])
    reg = stages.register(hm["boldref"], hm["boldref_mask"], work, method="syn")
    res = stages.resample(work / "stc.nii", hm["hmc_xfm"], reg["field"], work, output_res=2,
                          n_non_steady=info["dummy_scans"])
    return {"truth": truth, "bold": bold, "info": info, "hmc": hm, "reg": reg, "res": res,
            "work": work}


def test_dummy_scans_detected_exactly(sim):
    assert sim["info"]["dummy_source"] == "auto"
    assert sim["info"]["dummy_scans"] == sim["truth"]["dummy_scans"] == 3


def test_motion_parameters_match_truth(sim):
    truth = sim["truth"]
    n0 = sim["info"]["dummy_scans"]
    hmc = stages.parse_itk_text(open(sim["hmc"]["hmc_xfm"]).read())
    # Every volume has a transform; the non-steady ones are registered too but scored apart.
    assert len(hmc) == N_VOLUMES
    hmc = hmc[n0:]
    true_mats = np.asarray(truth["motion_matrices"])[n0:]
    c = np.asarray(truth["motion_centre"])
    est = motion.matrices_to_params(hmc, c)
    # Estimates are relative to the boldref, truth to volume 0: remove the constant pose offset.
    d = np.mean([np.linalg.inv(t) @ e for t, e in zip(true_mats, hmc)], axis=0)
    u, _, vt = np.linalg.svd(d[:3, :3])
    d[:3, :3] = u @ vt
    ref = motion.matrices_to_params(true_mats @ d, c)
    rms_t, rms_r = motion.framewise_rms(est, ref)
    print(f"motion RMS: {rms_t:.3f} mm, {rms_r:.4f} rad")
    assert rms_t < 0.15 and rms_r < 0.003
    checked = 0
    for k, limit in enumerate([0.3] * 3 + [0.005] * 3):
        if np.ptp(ref[:, k]) > limit:
            r = np.corrcoef(est[:, k], ref[:, k])[0, 1]
            print(motion.PARAM_NAMES[k], f"r = {r:.3f}")
            assert r >= 0.9
            checked += 1
    assert checked >= 2, "the simulated motion must be large enough to test correlation"


def test_slice_timing_improves_driven_region(tmp_path):
    # Still head, high SNR, no physiology: isolates slice timing.
    from bids_eeg2fmri.simulate import load_ground_truth, simulate_dataset
    import nibabel as nib

    result = simulate_dataset(tmp_path / "bids", _params(motion_scale=0.0, snr=400.0,
                                                         physio_noise=0.0, drift=0.0,
                                                         dummy_scans=0, volumes=80))
    truth = load_ground_truth(result.bids_dir, "01")
    img = nib.load(result.runs[0].bold)
    data = np.asarray(img.dataobj, dtype=np.float32)
    out = slice_time_correct(data, truth["slice_timing"], truth["tr"],
                             ref_fraction=truth["slice_time_ref"] / truth["tr"])
    # Voxels of each driven region, found by mapping voxel centres to MNI with the true anatomy.
    ijk = np.indices(data.shape[:3]).reshape(3, -1)
    xyz = (img.affine @ np.vstack([ijk, np.ones(ijk.shape[1])]))[:3]
    mni = truth["anatomy"].to_mni(xyz)
    labels_img = truth["region_labels_mni"]
    vox = np.linalg.inv(labels_img.affine) @ np.vstack([mni, np.ones(mni.shape[1])])
    idx = np.round(vox[:3]).astype(int)
    labels = np.asarray(labels_img.dataobj)
    ok = np.all((idx >= 0) & (idx < np.array(labels.shape)[:, None]), axis=0)
    lab = np.zeros(ijk.shape[1], int)
    lab[ok] = labels[idx[0, ok], idx[1, ok], idx[2, ok]]
    lab = lab.reshape(data.shape[:3])
    improved = 0
    for r, driven in enumerate(truth["region_driven"]):
        if not driven:
            continue
        sig = truth["regional_signals"][:, r]
        sel = lab == r + 1
        before = np.mean([np.corrcoef(v, sig)[0, 1] for v in data[sel]])
        after = np.mean([np.corrcoef(v, sig)[0, 1] for v in out[sel]])
        print(f"region {truth['region_names'][r]}: r before {before:.4f}, after {after:.4f}")
        assert after > before
        improved += 1
    assert improved >= 2


def _pull_template_mask(sim, kind):
    """Template mask voxels, and whether truth∘estimate maps each back into the same mask."""
    shape, aff = template_grid(2)
    mask = template_mask_on_grid(shape, aff, kind)
    field, faff = registration.load_field(sim["reg"]["field"])
    ijk = np.indices(shape).reshape(3, -1).T
    pts = (aff @ np.column_stack([ijk, np.ones(len(ijk))]).T)[:3].T
    q = registration.template_to_boldref(pts, field, faff)  # estimated subject (boldref) point
    back = sim["truth"]["anatomy"].to_mni(q.T).T              # where that point truly is in MNI
    vox = np.round((np.linalg.inv(aff) @ np.column_stack([back, np.ones(len(back))]).T)[:3]).astype(int)
    inside = np.all((vox >= 0) & (vox < np.array(shape)[:, None]), axis=0)
    hit = np.zeros(len(pts), bool)
    hit[inside] = mask[vox[0, inside], vox[1, inside], vox[2, inside]]
    # Only where the EPI slab has data.
    import nibabel as nib
    epi = nib.load(sim["bold"])
    v = np.linalg.inv(epi.affine) @ np.column_stack([q, np.ones(len(q))]).T
    fov = np.all((v[:3] > 0) & (v[:3] < np.array(epi.shape[:3])[:, None] - 1), axis=0)
    return mask.reshape(-1) & fov, hit & fov


@pytest.mark.parametrize("kind, limit", [("brain", 0.90), ("gm", 0.75)])
def test_registration_overlap(sim, kind, limit):
    ref, mapped = _pull_template_mask(sim, kind)
    dice = 2 * np.sum(ref & mapped) / (ref.sum() + mapped.sum())
    print(f"{kind} Dice {dice:.3f}")
    assert dice >= limit


@pytest.mark.parametrize("region", [0, 1, 2, 3])
def test_driven_regions_carry_their_source(sim, region):
    import nibabel as nib

    truth = sim["truth"]
    n0 = sim["info"]["dummy_scans"]
    assert truth["region_driven"][region], "regions 0-3 carry sources 1-4 with 4 sources"
    img = nib.load(sim["res"]["preproc"])
    data = np.asarray(img.dataobj, dtype=np.float32)
    labels = np.asarray(truth["region_labels_mni"].dataobj).astype(int)
    assert labels.shape == data.shape[:3]
    assert data.shape[3] == N_VOLUMES  # every volume kept; the non-steady ones are left out here
    series = data[labels == region + 1][:, n0:]
    series = series[series.mean(axis=1) > 0].mean(axis=0)
    # Drifts slower than 1/128 s are removed from both, as in the simulator's noise ceiling.
    series = high_pass(series[None], truth["tr"], 1 / 128.0)[0]
    sig = high_pass(truth["regional_signals"][n0:, region][None], truth["tr"], 1 / 128.0)[0]
    r_val = np.corrcoef(series, sig)[0, 1]
    print(f"{truth['region_names'][region]}: r = {r_val:.3f} "
          f"(noise ceiling {truth['noise_ceiling'][region]:.3f})")
    assert r_val >= 0.7
