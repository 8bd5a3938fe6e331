"""The brain being scanned: an EPI-like contrast in MNI space and each subject's deformation.

A subject's head coordinates (scanner world mm at volume 0, RAS) map to MNI152NLin2009aSym by

    y = A · h            (A: the subject→MNI affine, 4×4)
    p = y + u(y)         (u: smooth displacement field in mm, sampled trilinearly on the MNI
                          2 mm grid)

so the subject's brain at ``h`` looks like the template at ``p``. Rotations up to
``max_rotation_deg``, translations up to ``max_translation_mm`` and scales up to ``max_scale``
build ``A``; ``u`` peaks at ``warp_mm``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import nibabel as nib
import numpy as np
from scipy.ndimage import gaussian_filter, zoom

from ..resources.atlases import load_atlas
from ..resources.templates import load_mask, load_template, load_tissue_probability, template_grid

#: EPI (T2*-weighted) intensities of the tissues: CSF brightest, then grey, then white matter;
#: the scalp is dim because EPI is fat-suppressed.
EPI_INTENSITY = {"csf": 1000.0, "gm": 720.0, "wm": 540.0, "scalp": 60.0}
#: MNI point the EPI field of view is centred on (middle of the cerebrum).
BRAIN_CENTRE_MNI = np.array([0.0, -17.0, 14.0])


@dataclass
class MNIModel:
    """Images in MNI152NLin2009aSym (2 mm grid) the BOLD is sampled from.

    Attributes
    ----------
    affine
        Voxel → MNI mm of every array here.
    contrast
        EPI-like baseline intensity, smoothed to the EPI voxel size.
    labels
        int16: 0 outside the reported regions, ``r + 1`` inside region ``region_names[r]``.
    physio_maps
        (J, X, Y, Z) weights of the physiological fluctuations (CSF pulsation, smooth field).
    region_names
        Names of the reported regions (Harvard-Oxford).
    """

    affine: np.ndarray
    contrast: np.ndarray
    labels: np.ndarray
    physio_maps: np.ndarray
    region_names: tuple[str, ...]

    def __post_init__(self) -> None:
        # Contrast and physiological maps interleaved per voxel: one gather per corner.
        self._interp = Trilinear(
            np.concatenate([self.contrast[..., None], np.moveaxis(self.physio_maps, 0, -1)],
                           axis=-1), "zero")

    def sample(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Contrast, label and physio weights at MNI points ``points`` (3, N).

        Trilinear for the contrast and maps, nearest neighbour for the labels; zero outside
        the grid.

        Returns
        -------
        contrast, labels, physio
            (N,) float32, (N,) int16, (J, N) float32.
        """
        idx = mni_to_index(self.affine, points)
        vals = self._interp(idx)
        near = np.rint(idx).astype(np.intp)
        shape = np.array(self.labels.shape)[:, None]
        inside = np.all((near >= 0) & (near < shape), axis=0)
        lab = np.zeros(idx.shape[1], dtype=np.int16)
        lab[inside] = self.labels[near[0, inside], near[1, inside], near[2, inside]]
        return vals[0], lab, vals[1:]


class Trilinear:
    """Trilinear interpolation of a (X, Y, Z, F) stack at continuous voxel indices.

    Equivalent to ``scipy.ndimage.map_coordinates(order=1)`` on each of the F volumes with
    ``mode="grid-constant", cval=0`` (``outside="zero"``) or ``mode="nearest"``
    (``outside="clip"``), but computes the eight weights once for all F and gathers whole rows:
    several times faster, which matters in the per-volume BOLD loop.

    Parameters
    ----------
    stack
        (X, Y, Z, F) values; each axis at least 2 long.
    outside
        ``zero`` or ``clip``.
    """

    def __init__(self, stack: np.ndarray, outside: str = "zero") -> None:
        if outside not in ("zero", "clip"):
            raise ValueError(f"outside must be 'zero' or 'clip', not {outside!r}")
        self.outside = outside
        self.shape = np.array(stack.shape[:3])
        # A one-voxel rim of zeros makes every corner of an in-range cell addressable.
        arr = np.pad(stack, ((1, 1), (1, 1), (1, 1), (0, 0))) if outside == "zero" else stack
        self._padded_shape = np.array(arr.shape[:3])
        self._flat = np.ascontiguousarray(arr.reshape(-1, stack.shape[3]), dtype=np.float32)
        s1, s2 = int(self._padded_shape[1] * self._padded_shape[2]), int(self._padded_shape[2])
        self._offsets = [dx * s1 + dy * s2 + dz for dx in (0, 1) for dy in (0, 1) for dz in (0, 1)]
        self._strides = (s1, s2)

    def __call__(self, idx: np.ndarray) -> np.ndarray:
        """Values at indices ``idx`` (3, N) → (F, N) float32."""
        shape = self.shape[:, None]
        if self.outside == "clip":
            idx = np.clip(idx, 0, shape - 1)
            base = np.minimum(np.floor(idx), shape - 2).astype(np.intp)
            valid = None
        else:
            base = np.floor(idx).astype(np.intp)
            valid = np.all((base >= -1) & (base <= shape - 1), axis=0)
            base += 1
            base[:, ~valid] = 0
        frac = (idx - base + (1 if self.outside == "zero" else 0)).astype(np.float32)
        flat = base[0] * self._strides[0] + base[1] * self._strides[1] + base[2]
        fx, fy, fz = frac
        wx, wy, wz = (1 - fx, fx), (1 - fy, fy), (1 - fz, fz)
        out = np.zeros((idx.shape[1], self._flat.shape[1]), dtype=np.float32)
        corner = 0
        for dx in (0, 1):
            for dy in (0, 1):
                wxy = wx[dx] * wy[dy]
                for dz in (0, 1):
                    w = wxy * wz[dz]
                    out += w[:, None] * self._flat[flat + self._offsets[corner]]
                    corner += 1
        if valid is not None:
            out[~valid] = 0.0
        return out.T


def trilinear(stack: np.ndarray, idx: np.ndarray, outside: str = "zero") -> np.ndarray:
    """One-off :class:`Trilinear` interpolation of ``stack`` at ``idx`` (3, N) → (F, N)."""
    return Trilinear(stack, outside)(idx)


def mni_to_index(affine: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Continuous voxel indices (3, N) of world points (3, N) on a grid with ``affine``."""
    inv = np.linalg.inv(affine)
    return inv[:3, :3] @ points + inv[:3, 3:4]


@functools.lru_cache(maxsize=2)
def build_mni_model(region_names: tuple[str, ...], voxel_size: tuple[float, float, float],
                    ) -> MNIModel:
    """Make the EPI-like contrast, region labels and physiological maps on the MNI 2 mm grid.

    Parameters
    ----------
    region_names
        Harvard-Oxford names of the regions to label, in order.
    voxel_size
        EPI voxel size (mm); the contrast is blurred to it so that sampling does not alias.

    Returns
    -------
    MNIModel
        Cached per (regions, voxel size): loading the template and atlas takes seconds, and
        tests simulate many datasets in one process. Treat its arrays as read-only.
    """
    template = load_template(2)
    affine = template.affine.copy()
    t1 = np.asarray(template.dataobj, dtype=np.float32)
    brain = np.asarray(load_mask("brain", 2).dataobj).astype(np.float32)
    gm = np.asarray(load_tissue_probability("gm", 2).dataobj, dtype=np.float32)
    wm = np.asarray(load_tissue_probability("wm", 2).dataobj, dtype=np.float32)
    brain_soft = gaussian_filter(brain, 0.7)
    csf = np.clip(brain_soft - gm - wm, 0.0, 1.0)
    head = (gaussian_filter(t1, 1.0) > 0.08).astype(np.float32)
    scalp = np.clip(head - brain_soft, 0.0, 1.0)
    contrast = (EPI_INTENSITY["csf"] * csf + EPI_INTENSITY["gm"] * gm
                + EPI_INTENSITY["wm"] * wm + EPI_INTENSITY["scalp"] * scalp)
    # Blur to the EPI resolution: FWHM of a voxel minus the template's own 2 mm.
    fwhm = np.sqrt(max(float(np.mean(voxel_size)) ** 2 - 4.0, 0.0))
    if fwhm > 0:
        contrast = gaussian_filter(contrast, fwhm / 2.355 / 2.0)
    atlas = load_atlas("harvard-oxford", target=template)
    labels = np.zeros(template.shape[:3], dtype=np.int16)
    for r, name in enumerate(region_names):
        labels[atlas.region_mask(name)] = r + 1
    # Physiological fluctuation weights: CSF pulsation (strong) and a smooth brain field.
    zz = np.indices(t1.shape, dtype=np.float32)[2] / t1.shape[2]
    physio = np.stack([2.0 * gaussian_filter(csf, 1.0) + 0.5 * gm,
                       brain_soft * (0.5 + zz)]).astype(np.float32)
    return MNIModel(affine=affine, contrast=contrast.astype(np.float32), labels=labels,
                    physio_maps=physio, region_names=tuple(region_names))


@dataclass
class SubjectAnatomy:
    """How one subject's head maps onto MNI152NLin2009aSym.

    Attributes
    ----------
    affine
        4×4 subject (head, RAS mm) → MNI affine ``A``.
    warp
        (X, Y, Z, 3) float32 displacement ``u`` in mm on the grid ``warp_affine``.
    warp_affine
        Voxel → MNI mm of ``warp`` (the 4 mm grid over the MNI152 field of view; the warp is
        smooth at several centimetres, so trilinear interpolation from it is the definition).
    """

    affine: np.ndarray
    warp: np.ndarray
    warp_affine: np.ndarray

    def to_mni(self, points: np.ndarray) -> np.ndarray:
        """Map head points (3, N) to MNI points (3, N): ``p = A·h + u(A·h)``."""
        y = self.affine[:3, :3] @ points + self.affine[:3, 3:4]
        if getattr(self, "_interp", None) is None:
            self._interp = Trilinear(self.warp, "clip")
        return y + self._interp(mni_to_index(self.warp_affine, y))

    def warp_image(self) -> nib.Nifti1Image:
        """The displacement field as a 4-D NIfTI (last axis: x, y, z displacement in mm)."""
        img = nib.Nifti1Image(self.warp, self.warp_affine)
        img.header.set_xyzt_units("mm")
        img.header.set_intent("vector", (), name="displacement mm")
        return img


def rotation_matrix(rx: float, ry: float, rz: float) -> np.ndarray:
    """3×3 rotation ``Rz(rz) · Ry(ry) · Rx(rx)`` (radians; x is applied first)."""
    cx, sx, cy, sy, cz, sz = np.cos(rx), np.sin(rx), np.cos(ry), np.sin(ry), np.cos(rz), np.sin(rz)
    r_x = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    r_y = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    r_z = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return r_z @ r_y @ r_x


def random_subject(rng: np.random.Generator, *, max_rotation_deg: float,
                   max_translation_mm: float, max_scale: float, warp_mm: float,
                   ) -> SubjectAnatomy:
    """Draw one subject: a random affine and a smooth random warp of the template.

    Parameters
    ----------
    rng
        The subject's anatomy generator.
    max_rotation_deg, max_translation_mm, max_scale, warp_mm
        Ranges (uniform within ±) and the warp's peak displacement.

    Returns
    -------
    SubjectAnatomy
    """
    rot = np.deg2rad(rng.uniform(-max_rotation_deg, max_rotation_deg, 3))
    trans = rng.uniform(-max_translation_mm, max_translation_mm, 3)
    scale = 1.0 + rng.uniform(-max_scale, max_scale, 3)
    # The subject's head is the template rotated, scaled and shifted: MNI → head is
    # h = R·S·(p − c) + c + t about the brain centre c; store its inverse (head → MNI).
    centre = BRAIN_CENTRE_MNI
    fwd = np.eye(4)
    fwd[:3, :3] = rotation_matrix(*rot) @ np.diag(scale)
    fwd[:3, 3] = centre + trans - fwd[:3, :3] @ centre
    shape, warp_affine = template_grid(4)
    coarse = rng.standard_normal((3, 5, 6, 5))
    warp = np.stack([zoom(coarse[a], np.array(shape) / np.array(coarse.shape[1:]), order=3,
                          mode="nearest") for a in range(3)], axis=-1)
    peak = np.max(np.linalg.norm(warp, axis=-1))
    warp = (warp * (warp_mm / peak if peak > 0 else 0.0)).astype(np.float32)
    return SubjectAnatomy(affine=np.linalg.inv(fwd), warp=warp, warp_affine=warp_affine)
