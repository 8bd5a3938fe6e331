"""Tissue-signal confounds of a template-space series, in fMRIPrep's names and JSON metadata.

What nilearn's ``load_confounds``/``load_confounds_strategy`` look for (nilearn 0.11–0.14,
``interfaces/fmriprep/load_confounds_*.py``):

* ``global_signal``, ``csf``, ``white_matter`` and the motion parameters, each with the suffixes
  ``_derivative1``, ``_power2`` and ``_derivative1_power2`` (``motion="full"``, ``wm_csf="full"``);
* columns containing ``cosine`` for ``high_pass``;
* ``a_comp_cor_NN`` whose JSON entry has ``Mask`` ``combined``; ``c_comp_cor_NN`` (CSF) and
  ``w_comp_cor_NN`` (WM) for the ``*_separated`` variants; ``t_comp_cor_NN``. nilearn counts the
  JSON keys of each prefix and expects ``_00`` … in the table, so only retained components are
  written (to both).

The tissue masks come from nilearn's MNI152 grey/white-matter masks on the output grid (our
template space): white matter is the WM mask, CSF the brain mask minus GM and WM; both are eroded
(fMRIPrep erodes its anatomical masks too) so partial-volume grey matter does not leak in.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import ndimage

from . import masking

# fMRIPrep's CompCor settings: 128 s cosine high-pass before the SVD, components kept until they
# explain half of the variance, temporal CompCor from the 2 % highest-variance brain voxels.
COMPCOR_HIGH_PASS_HZ = 1.0 / 128.0
VARIANCE_THRESHOLD = 0.5
TCOMPCOR_FRACTION = 0.02
# Too few voxels make the SVD meaningless; fMRIPrep then writes no components either.
MIN_VOXELS = 5
EXPANSIONS = ("derivative1", "power2", "derivative1_power2")


def expand(table: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """Add fMRIPrep's ``_derivative1``, ``_power2`` and ``_derivative1_power2`` columns.

    The derivative is the backward difference (``n/a`` for the first volume), as in fMRIPrep.
    """
    out = table.copy()
    for name in names:
        x = out[name].to_numpy(dtype=float)
        d = np.concatenate([[np.nan], np.diff(x)])
        out[f"{name}_derivative1"] = d
        out[f"{name}_power2"] = x ** 2
        out[f"{name}_derivative1_power2"] = d ** 2
    return out


def cosine_table(n_volumes: int, repetition_time: float,
                 cutoff_hz: float = COMPCOR_HIGH_PASS_HZ) -> pd.DataFrame:
    """fMRIPrep's ``cosineNN`` columns: the DCT basis of periods longer than ``1/cutoff_hz``."""
    basis = masking.dct_basis(n_volumes, repetition_time, cutoff_hz)
    return pd.DataFrame(basis, columns=[f"cosine{k:02d}" for k in range(basis.shape[1])])


def eroded_tissue_masks(mask: np.ndarray, affine: np.ndarray, iterations: int = 1
                        ) -> dict[str, np.ndarray]:
    """Eroded ``WM`` and ``CSF`` masks on a template grid, restricted to ``mask`` (3-D bool)."""
    shape = mask.shape
    wm = masking.template_mask_on_grid(shape, affine, "wm")
    gm = masking.template_mask_on_grid(shape, affine, "gm")
    brain = masking.template_mask_on_grid(shape, affine, "brain")
    csf = brain & ~gm & ~wm
    out = {}
    for name, tissue in (("CSF", csf), ("WM", wm)):
        eroded = ndimage.binary_erosion(tissue, iterations=iterations) & mask
        # A coarse grid can erode a thin compartment away: fall back to the uneroded mask.
        out[name] = eroded if eroded.sum() >= MIN_VOXELS else tissue & mask
    return out


def compcor(series: np.ndarray, repetition_time: float,
            variance_threshold: float = VARIANCE_THRESHOLD) -> tuple[np.ndarray, np.ndarray]:
    """Principal components of ``(voxels, t)`` series, nipype ``CompCor`` style.

    Each voxel is cosine high-passed (128 s), demeaned and scaled to unit variance; the left
    singular vectors of the ``(t, voxels)`` matrix are kept until their cumulative explained
    variance reaches ``variance_threshold``.

    Returns
    -------
    components, singular_values
        ``(t, k)`` retained components and the ``(k_all,)`` singular values of all of them.
    """
    x = np.asarray(series, dtype=np.float64)
    x = masking.high_pass(x, repetition_time, COMPCOR_HIGH_PASS_HZ)
    x = x - x.mean(axis=1, keepdims=True)
    sd = x.std(axis=1, keepdims=True)
    x = x[sd[:, 0] > 0] / sd[sd[:, 0] > 0]
    if x.shape[0] < MIN_VOXELS:
        return np.zeros((series.shape[1], 0)), np.zeros(0)
    u, s = left_singular_vectors(x.T)
    explained = s ** 2 / np.sum(s ** 2)
    n_keep = int(np.searchsorted(np.cumsum(explained), variance_threshold) + 1)
    return u[:, :n_keep], s


def left_singular_vectors(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Left singular vectors ``(t, t)`` and singular values of a wide ``(t, voxels)`` matrix.

    From the eigen-decomposition of the ``t × t`` Gram matrix: one matrix product instead of
    LAPACK's SVD, which also builds the ``t × voxels`` right vectors. Measured on 297 × 40 000:
    0.08 against 5.1 CPU seconds (one thread), the leading singular values equal to 1e-8. Each
    vector's sign makes its largest-magnitude entry positive (scikit-learn's ``svd_flip``), so the
    components do not depend on the LAPACK build.
    """
    a = np.asarray(a, dtype=np.float64)
    w, vecs = np.linalg.eigh(a @ a.T)
    order = np.argsort(w)[::-1]
    u = vecs[:, order]
    signs = np.sign(u[np.argmax(np.abs(u), axis=0), np.arange(u.shape[1])])
    return u * np.where(signs == 0, 1.0, signs), np.sqrt(np.clip(w[order], 0.0, None))


def high_passed_variance(values: np.ndarray, repetition_time: float,
                         cutoff_hz: float = COMPCOR_HIGH_PASS_HZ, block: int = 8192) -> np.ndarray:
    """Per-row variance of ``(voxels, t)`` series after :func:`masking.high_pass`, without it.

    The discrete cosines are orthonormal and orthogonal to the constant, so the high-passed
    variance is the demeaned series' energy minus its energy in the cosine basis. Computed over
    blocks of rows: filtering every brain voxel in float64 (0.55 GB for 230 k voxels × 300
    volumes, plus nilearn's copies) only to rank voxels by variance dominated the resampling
    node's memory and time.
    """
    n_t = values.shape[1]
    basis = (masking.dct_basis(n_t, repetition_time, cutoff_hz) if cutoff_hz > 0
             else np.zeros((n_t, 0)))
    out = np.empty(values.shape[0])
    for a in range(0, values.shape[0], block):
        x = np.asarray(values[a:a + block], dtype=np.float64)
        x = x - x.mean(axis=1, keepdims=True)
        proj = x @ basis
        out[a:a + block] = (np.einsum("ij,ij->i", x, x) - np.einsum("ij,ij->i", proj, proj)) / n_t
    return out


def _components(prefix: str, series: np.ndarray, repetition_time: float, meta: dict[str, Any]
                ) -> tuple[pd.DataFrame, dict[str, dict[str, Any]]]:
    comps, s = compcor(series, repetition_time)
    explained = s ** 2 / np.sum(s ** 2) if s.size else s
    names = [f"{prefix}_comp_cor_{k:02d}" for k in range(comps.shape[1])]
    info = {name: {**meta, "Retained": True, "SingularValue": float(s[k]),
                   "VarianceExplained": float(explained[k]),
                   "CumulativeVarianceExplained": float(np.sum(explained[:k + 1]))}
            for k, name in enumerate(names)}
    return pd.DataFrame(comps, columns=names), info


def _pad_rows(frame: pd.DataFrame, n: int) -> pd.DataFrame:
    """``n`` rows of zeros ahead of ``frame`` (nipype's CompCor pads skipped volumes the same way)."""
    pad = pd.DataFrame(np.zeros((n, frame.shape[1])), columns=frame.columns)
    return pd.concat([pad, frame], ignore_index=True)


def tissue_confounds(values: np.ndarray, mask: np.ndarray, affine: np.ndarray,
                     repetition_time: float, n_non_steady: int = 0
                     ) -> tuple[pd.DataFrame, dict[str, dict[str, Any]]]:
    """Global, WM and CSF signals (with expansions), CompCor and cosine regressors.

    As fMRIPrep does (nipype ``CompCor(ignore_initial_volumes=...)``), the ``n_non_steady``
    leading volumes are left out of CompCor (voxel selection, filtering and SVD) and of the cosine
    basis, whose rows there are 0; the mean signals cover every volume.

    Parameters
    ----------
    values
        ``(voxels, t)`` template-space series of the voxels of ``mask`` (C order), before any
        smoothing or filtering.
    mask
        3-D boolean brain mask on the template grid.
    affine
        The grid's affine.
    repetition_time
        Seconds.
    n_non_steady
        Leading non-steady-state volumes.

    Returns
    -------
    table, metadata
        One row per volume; the JSON descriptions of its columns (CompCor with ``Method``,
        ``Mask``, ``Retained``, ``SingularValue``, ``VarianceExplained``…).
    """
    values = np.asarray(values)
    n_t = values.shape[1]
    index = np.full(mask.shape, -1)
    index[mask] = np.arange(int(mask.sum()))
    tissues = eroded_tissue_masks(mask, affine)
    rows = {k: index[m] for k, m in tissues.items()}
    table = pd.DataFrame({
        "global_signal": values.mean(axis=0, dtype=np.float64),
        "csf": values[rows["CSF"]].mean(axis=0, dtype=np.float64) if rows["CSF"].size else np.nan,
        "white_matter": values[rows["WM"]].mean(axis=0, dtype=np.float64)
        if rows["WM"].size else np.nan})
    table = expand(table, ["global_signal", "csf", "white_matter"])
    meta: dict[str, dict[str, Any]] = {
        "global_signal": {"Description": "Mean signal in the brain mask"},
        "csf": {"Description": "Mean signal in the eroded CSF mask (MNI152 brain minus GM and WM)"},
        "white_matter": {"Description": "Mean signal in the eroded MNI152 white-matter mask"},
    }
    combined = np.concatenate([rows["CSF"], rows["WM"]])
    skip = int(n_non_steady)
    steady = values[:, skip:]
    variance = high_passed_variance(steady, repetition_time)
    n_top = max(MIN_VOXELS, int(round(TCOMPCOR_FRACTION * variance.size)))
    top = np.argsort(variance)[::-1][:n_top]
    parts = [table]
    for prefix, rows_k, info in (
            ("c", rows["CSF"], {"Method": "aCompCor", "Mask": "CSF"}),
            ("w", rows["WM"], {"Method": "aCompCor", "Mask": "WM"}),
            ("a", combined, {"Method": "aCompCor", "Mask": "combined"}),
            ("t", top, {"Method": "tCompCor"})):
        frame, desc = _components(prefix, steady[rows_k], repetition_time, info)
        parts.append(_pad_rows(frame, skip))
        meta.update(desc)
    cos = _pad_rows(cosine_table(n_t - skip, repetition_time), skip)
    parts.append(cos)
    meta.update({c: {"Description": "Discrete cosine basis regressor (128 s high-pass)"}
                 for c in cos.columns})
    return pd.concat(parts, axis=1), meta
