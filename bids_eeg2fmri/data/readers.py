"""Thin readers from participant-level derivatives to :class:`~.windows.RunArrays`.

Expected files (documented in ``docs/outputs.md`` by their writers):

- ``<src>_desc-stft_spectrogram.h5``: dataset ``spectrogram`` ``(volumes, channels, frequencies,
  frames)`` float32, plus ``channels`` (strings), ``frequencies`` (Hz) and ``volume_indices`` (the
  BOLD volume of each row; rows for volumes without EEG are absent).
- ``<src>_space-…_desc-model_bold.nii.gz`` (masked, detrended, z-scored per voxel on the model grid)
  with its ``desc-brain_mask``; or an atlas to average it into regions.
- ``<src>_desc-confounds_timeseries.tsv`` with a ``framewise_displacement`` column (first row n/a)
  and fMRIPrep's ``non_steady_state_outlierNN`` one-hot columns: the series keep every volume of
  the run, and the flagged (non-steady-state) volumes are not targets or inputs.

The BOLD is read once per run into a float32 ``.npy`` memory map in ``cache_dir`` (one file per
run), so that datasets page volumes in from disk instead of holding every run in RAM; the
spectrogram stays an HDF5 dataset read slice by slice.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pandas as pd

from ..bids.derivatives import atomic_path
from ..errors import DataError
from ..fmri.confounds import non_steady_mask
from .windows import DataSpec, RunArrays


def read_spectrogram(path: str | os.PathLike, n_volumes: int, volume_offset: int = 0,
                     values: np.ndarray | None = None
                     ) -> tuple[np.ndarray, np.ndarray, list[str], np.ndarray]:
    """Spectrogram rows placed at their BOLD volumes.

    Parameters
    ----------
    path
        The ``desc-stft_spectrogram.h5`` file.
    n_volumes
        Volumes of the BOLD series the rows are placed into.
    volume_offset
        Original BOLD volumes missing from the start of that series: ``volume_indices`` count
        volumes of the original run. This app's series keep every volume (offset 0); a series
        whose sidecar has ``NumberOfVolumesDiscardedByUser`` (derivatives of versions that cut the
        dummy scans off) lacks that many, and the rows of those volumes are dropped.
    values
        An array of the file's spectrogram shape placed instead of the file's values (e.g. the
        simulator's noiseless spectrogram of that run).

    Returns
    -------
    eeg : ndarray
        ``(n_volumes, channels, freqs, frames)``; rows without EEG are zero.
    eeg_valid : ndarray
        ``(n_volumes,)`` bool.
    channels, frequencies
    """
    try:
        with h5py.File(path, "r") as fh:
            spec = fh["spectrogram"]
            if spec.ndim != 4:
                raise DataError(f"spectrogram must be 4-D (volumes, channels, frequencies, "
                                f"frames), got {spec.ndim}-D", path=path)
            if values is not None and tuple(np.shape(values)) != spec.shape:
                raise DataError(f"replacement values of shape {np.shape(values)} do not fit the "
                                f"spectrogram's {spec.shape}", path=path)
            data = (spec[:] if values is None else np.asarray(values)).astype(np.float32)
            channels = [c.decode() if isinstance(c, bytes) else str(c) for c in fh["channels"][:]]
            freqs = np.asarray(fh["frequencies"][:], dtype=float)
            rows = (np.asarray(fh["volume_indices"][:], dtype=int) if "volume_indices" in fh
                    else np.arange(len(data)))
    except (OSError, KeyError) as exc:
        raise DataError(f"cannot read spectrogram: {exc}", path=path) from None
    if volume_offset:
        keep = rows >= volume_offset
        data, rows = data[keep], rows[keep] - volume_offset
    if rows.max(initial=-1) >= n_volumes or len(rows) != len(data):
        raise DataError(f"spectrogram volume indices do not fit the {n_volumes} BOLD volumes",
                        path=path)
    eeg = np.zeros((n_volumes,) + data.shape[1:], dtype=np.float32)
    eeg[rows] = data
    valid = np.zeros(n_volumes, dtype=bool)
    valid[rows] = True
    return eeg, valid, channels, freqs


def read_confounds(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Framewise displacement (n/a → 0) and the non-steady-state flags of a confounds TSV.

    Returns
    -------
    fd : ndarray
        ``(volumes,)`` float.
    non_steady : ndarray
        ``(volumes,)`` bool, True where a ``non_steady_state_outlier*`` column flags the volume.
    """
    try:
        table = pd.read_csv(path, sep="\t", na_values=["n/a"])
    except OSError as exc:
        raise DataError(f"cannot read confounds: {exc.strerror}", path=path) from None
    if "framewise_displacement" not in table:
        raise DataError("confounds have no framewise_displacement column", path=path)
    return (table["framewise_displacement"].fillna(0.0).to_numpy(float),
            non_steady_mask(table))


def _rows_checked(flags: np.ndarray, n_volumes: int, confounds: str | os.PathLike) -> np.ndarray:
    """The confounds' non-steady flags, when the table has one row per BOLD volume."""
    if flags.size != n_volumes:
        raise DataError(f"confounds have {flags.size} rows, the BOLD series {n_volumes} "
                        "volumes", path=confounds)
    return flags


def non_steady_flags(n_volumes: int, confounds: str | os.PathLike | None = None,
                     sidecar: str | os.PathLike | None = None) -> np.ndarray:
    """``(n_volumes,)`` bool: a run's non-steady-state volumes.

    The ``non_steady_state_outlierNN`` flags of the ``confounds`` table (fMRIPrep's or ours); for
    a run without one, the ``NonSteadyStateVolumes`` leading volumes of the BOLD ``sidecar``.
    """
    if confounds is not None:
        return _rows_checked(read_confounds(confounds)[1], n_volumes, confounds)
    count = 0
    if sidecar is not None:
        try:
            count = int(json.loads(Path(sidecar).read_text()).get("NonSteadyStateVolumes", 0) or 0)
        except (OSError, ValueError, AttributeError) as exc:
            raise DataError(f"cannot read sidecar: {exc}", path=sidecar) from None
    return np.arange(n_volumes) < count


def _bold_memmap(img: nib.Nifti1Image, groups: list[np.ndarray], cache_dir: Path,
                 key: str) -> np.ndarray:
    """Write ``(volumes, targets)`` once to a .npy in ``cache_dir`` and return it memory-mapped.

    ``groups`` is either one array of flat (C-order) voxel indices — one target per voxel — or one
    index array per region, averaged into one target each.
    """
    dest = cache_dir / f"{key}.npy"
    if not dest.exists():
        data = np.asarray(img.dataobj, dtype=np.float32)
        flat = data.reshape(-1, data.shape[3])
        n_t = len(groups[0]) if len(groups) == 1 else len(groups)
        with atomic_path(dest) as tmp:
            out = np.lib.format.open_memmap(tmp, "w+", np.float32, (data.shape[3], n_t))
            if len(groups) == 1:
                out[:] = flat[groups[0]].T
            else:
                for j, idx in enumerate(groups):
                    out[:, j] = flat[idx].mean(axis=0)
            out.flush()
            del out
    return np.load(dest, mmap_mode="r")


def load_run(spectrogram: str | os.PathLike, bold: str | os.PathLike, *, subject: str,
             run: str = "1", mask: str | os.PathLike | None = None,
             atlas_labels: np.ndarray | None = None, confounds: str | os.PathLike | None = None,
             non_steady: np.ndarray | None = None, tr: float | None = None, volume_offset: int = 0,
             cache_dir: str | os.PathLike, image: nib.Nifti1Image | None = None,
             spectrum: tuple | None = None) -> tuple[RunArrays, DataSpec]:
    """Read one run's derivatives into arrays and describe them.

    Parameters
    ----------
    spectrogram, bold
        The spectrogram HDF5 file and the model-ready BOLD NIfTI.
    mask
        Brain mask on the BOLD grid: voxel targets (``target="voxels"``).
    atlas_labels
        Integer label volume on the BOLD grid: region targets (mean per label, ``"regions"``).
    confounds
        Confounds TSV: FD censoring, and its ``non_steady_state_outlierNN`` flags mark volumes
        that are not targets (nor inputs).
    non_steady
        ``(volumes,)`` bool flags of non-steady-state volumes, for a run without a confounds
        table (added to the table's flags otherwise).
    tr
        Repetition time; by default the NIfTI header's.
    volume_offset
        Leading volumes of the original run that the BOLD file no longer holds (its sidecar's
        ``NumberOfVolumesDiscardedByUser``), see :func:`read_spectrogram`.
    cache_dir
        Where the per-run BOLD memory maps go.
    image, spectrum
        ``bold`` already loaded and :func:`read_spectrogram`'s result for this run, when the
        caller reads the run once for several target sets (both directions).
    """
    img = image if image is not None else nib.load(os.fspath(bold))
    if img.ndim != 4:
        raise DataError(f"BOLD must be 4-D, got shape {img.shape}", path=bold)
    n = img.shape[3]
    tr = float(tr or img.header.get_zooms()[3])
    eeg, valid, channels, freqs = spectrum or read_spectrogram(spectrogram, n, volume_offset)
    grid = img.shape[:3]
    if (mask is None) == (atlas_labels is None):
        raise DataError("give exactly one of a brain mask (voxels) or atlas labels (regions)",
                        path=bold)
    if mask is not None:
        m = np.asarray(nib.load(os.fspath(mask)).dataobj) > 0
        if m.shape != grid:
            raise DataError(f"mask grid {m.shape} differs from the BOLD grid {grid}", path=mask)
        # Targets are the mask's voxels in C order, as DataSpec and GridCodec assume.
        groups = [np.flatnonzero(m.ravel())]
        spec = DataSpec(channels, freqs, eeg.shape[3], tr, "voxels", int(m.sum()), mask=m,
                        affine=img.affine)
    else:
        labels = np.asarray(atlas_labels)
        if labels.shape != grid:
            raise DataError(f"atlas grid {labels.shape} differs from the BOLD grid {grid}", path=bold)
        ids = np.unique(labels[labels > 0])
        groups = [np.flatnonzero(labels.ravel() == i) for i in ids]
        if len(groups) == 1:
            raise DataError("an atlas with a single region cannot serve as region targets", path=bold)
        spec = DataSpec(channels, freqs, eeg.shape[3], tr, "regions", len(ids),
                        region_names=[str(int(i)) for i in ids], labels=ids)
    digest = hashlib.sha1(str(Path(bold).resolve()).encode())
    for g in groups:
        digest.update(g.tobytes())
    bold_arr = _bold_memmap(img, groups, Path(cache_dir), digest.hexdigest()[:16])
    flagged = np.zeros(n, dtype=bool) if non_steady is None else np.asarray(non_steady, bool)
    fd = None
    if confounds is not None:
        fd, conf_flags = read_confounds(confounds)  # one read: FD and the flags
        flagged = flagged | _rows_checked(conf_flags, n, confounds)
    if flagged.shape != (n,):
        raise DataError(f"{flagged.size} non-steady-state flags for {n} volumes", path=bold)
    retained = ~flagged
    # A flagged volume is left out in both modalities, as when dummy scans were cut: an EEG window
    # reaching into one is not a sample. Keeping those windows (its EEG is physically valid) added
    # up to k samples per run at the start of the recording and cost the demo's mlp its lead over
    # the baselines (docs/benchmarks.md, *Demo after the session-4 merges*).
    return RunArrays(eeg=eeg, bold=bold_arr, subject=subject, run=run, retained=retained,
                     eeg_valid=valid & retained, fd=fd), spec
