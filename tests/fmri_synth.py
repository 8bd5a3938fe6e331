"""Small synthetic EPI series with known motion, anatomy transform and signal, for the fMRI tests.

Independent of the simulator package: the tests of numerics must not depend on it. The "anatomy" is
the MNI152 template with an EPI-like contrast (CSF > grey > white matter), moved by a known subject
transform ``S`` (template point → subject point) and, per volume, by a known head motion ``M_i``
(boldref point → volume point): ``volume_i(q) = E(S⁻¹ M_i⁻¹ q)``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from bids_eeg2fmri.fmri import motion
from bids_eeg2fmri.resources.templates import load_mask, load_tissue_probability


def epi_template() -> tuple[np.ndarray, np.ndarray]:
    """EPI-like contrast on the 2 mm template grid: CSF 1.0, GM 0.8, WM 0.6 (× 1000), 0 outside."""
    brain = np.asarray(load_mask("brain", 2).dataobj) > 0
    gm = np.asarray(load_tissue_probability("gm", 2).dataobj)
    wm = np.asarray(load_tissue_probability("wm", 2).dataobj)
    csf = np.clip(1.0 - gm - wm, 0.0, 1.0)
    img = 1000.0 * (0.8 * gm + 0.6 * wm + 1.0 * csf) * brain
    img = ndimage.gaussian_filter(img, 0.7).astype(np.float32)
    return img, load_mask("brain", 2).affine


@dataclass
class Synthetic:
    data: np.ndarray
    affine: np.ndarray
    params: np.ndarray            # (t, 6) true motion about the grid centre (package convention)
    subject: np.ndarray           # 4x4 template → subject
    signal: np.ndarray            # (t,) signal added in the driven sphere
    sphere_center_mni: np.ndarray
    extra: dict = field(default_factory=dict)


def grid(shape, zooms, center=(0.0, -18.0, 10.0)) -> np.ndarray:
    aff = np.diag(list(zooms) + [1.0])
    aff[:3, 3] = np.asarray(center) - (np.asarray(shape) - 1) / 2 * np.asarray(zooms)
    return aff


def make_series(shape=(32, 32, 16), zooms=(6.0, 6.5, 8.0), n_vols=12, *, motion_sd=(0.8, 0.015),
                subject_params=(3.0, -4.0, 2.0, 0.06, -0.04, 0.08), noise=5.0, seed=0,
                dummy=0, signal_amp=0.0, sphere_center=(0.0, -80.0, 8.0), sphere_radius=20.0,
                repetition_time=2.0) -> Synthetic:
    """Sample a motion-corrupted series from the EPI template (no slice timing: all slices at once)."""
    rng = np.random.default_rng(seed)
    epi, tpl_aff = epi_template()
    aff = grid(shape, zooms)
    subj = motion.params_to_matrices(np.array([subject_params]), [0.0, -18.0, 10.0])[0]
    params = np.zeros((n_vols, 6))
    if n_vols > 1:
        params[1:, :3] = rng.normal(0, motion_sd[0], (n_vols - 1, 3))
        params[1:, 3:] = rng.normal(0, motion_sd[1], (n_vols - 1, 3))
    mats = motion.params_to_matrices(params, motion.grid_center(shape, aff))
    t = np.arange(n_vols) * repetition_time
    signal = signal_amp * np.sin(2 * np.pi * t / 40.0)
    ijk = np.indices(epi.shape).reshape(3, -1).T
    xyz = (tpl_aff @ np.column_stack([ijk, np.ones(len(ijk))]).T)[:3].T
    sphere = (np.linalg.norm(xyz - np.asarray(sphere_center), axis=1) < sphere_radius).reshape(epi.shape)
    data = np.empty(tuple(shape) + (n_vols,), dtype=np.float32)
    for i in range(n_vols):
        vol = epi * (1.0 + signal[i] * sphere)
        if i < dummy:
            vol = vol * (1.0 + 0.4 / (i + 1))
        vx = np.linalg.inv(tpl_aff) @ np.linalg.inv(subj) @ np.linalg.inv(mats[i]) @ aff
        data[..., i] = ndimage.affine_transform(vol, vx[:3, :3], vx[:3, 3], output_shape=shape, order=1)
    data += rng.normal(0, noise, data.shape).astype(np.float32)
    data += 20.0  # scanner background offset: no exact zeros
    return Synthetic(data, aff, params, subj, signal, np.asarray(sphere_center))


def write_bids_bold(path: Path, data: np.ndarray, affine: np.ndarray, metadata: dict) -> Path:
    """Write a BOLD NIfTI and its JSON sidecar; returns the NIfTI path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    img = nib.Nifti1Image(data.astype(np.float32), affine)
    img.header.set_xyzt_units("mm", "sec")
    nib.save(img, path)
    path.with_name(path.name.split(".")[0] + ".json").write_text(json.dumps(metadata))
    return path
