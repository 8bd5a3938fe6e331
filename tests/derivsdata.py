"""A small participant-level output written by the package's own writers (no workflow run).

One fMRI run (preproc BOLD on a template grid, brain mask, confounds with tissue signals) and its
EEG (cleaned BrainVision with channels.tsv and events.tsv, spectrogram HDF5, band-power TSV), plus ``dataset_description.json``: enough for
the loading one-liners of ``docs/outputs.md`` and nilearn's confound readers.
"""

from __future__ import annotations

import json
from pathlib import Path

import mne
import nibabel as nib
import numpy as np

from bids_eeg2fmri.bids.derivatives import write_dataset_description, write_sidecar
from bids_eeg2fmri.eeg.bidsexport import write_preproc_eeg
from bids_eeg2fmri.eeg.pipeline import add_volume_annotations, volume_onsets_from_raw
from bids_eeg2fmri.eeg.pipeline import SpectralResult, write_bandpower_tsv, write_spectrogram_h5
from bids_eeg2fmri.fmri import confounds as conf
from bids_eeg2fmri.fmri import stages, tissue
from bids_eeg2fmri.fmri.io import write_masked_series
from bids_eeg2fmri.fmri.masking import template_mask_on_grid
from bids_eeg2fmri.fmri.motion import PARAM_NAMES
from bids_eeg2fmri.resources.templates import template_grid

STEM = "sub-01_task-rest_run-1"
TR = 2.0


def write_outputs(out: Path, *, res: int = 2, n_volumes: int = 40, n_non_steady: int = 2,
                  seed: int = 0) -> dict[str, Path]:
    """Write the files; return them by kind (``bold``, ``mask``, ``confounds``, ``eeg``…)."""
    rng = np.random.default_rng(seed)
    func, eeg = out / "sub-01" / "func", out / "sub-01" / "eeg"
    func.mkdir(parents=True)
    eeg.mkdir(parents=True)
    raw_dir = out.parent / "raw"
    (raw_dir / "sub-01").mkdir(parents=True, exist_ok=True)
    write_dataset_description(out, [raw_dir])
    shape, affine = template_grid(res)
    mask = template_mask_on_grid(shape, affine)
    n_vox = int(mask.sum())
    common = np.sin(np.arange(n_volumes) / 5.0)
    values = (1000 + 10 * rng.standard_normal((n_vox, 1)) * common[None, :]
              + rng.standard_normal((n_vox, n_volumes))).astype(np.float32)
    space = f"space-MNI152NLin2009aSym_res-{res}"
    files = {"bold": func / f"{STEM}_{space}_desc-preproc_bold.nii.gz",
             "mask": func / f"{STEM}_{space}_desc-brain_mask.nii.gz",
             "confounds": func / f"{STEM}_desc-confounds_timeseries.tsv",
             "eeg": eeg / f"{STEM}_desc-preproc_eeg.vhdr",
             "spectrogram": eeg / f"{STEM}_desc-stft_spectrogram.h5",
             "bandpower": eeg / f"{STEM}_desc-bandpower_timeseries.tsv"}
    write_masked_series(files["bold"], values, mask, affine, TR)
    nib.save(nib.Nifti1Image(mask.astype(np.uint8), affine), files["mask"])
    work = out.parent / "work"
    work.mkdir(exist_ok=True)
    table, meta = tissue.tissue_confounds(values, mask, affine, TR)
    conf.write_confounds_tsv(table, work / "tissue.tsv")
    (work / "tissue.json").write_text(json.dumps(meta))
    params = np.cumsum(rng.normal(0, 0.0005, (n_volumes, 6)), axis=0)
    np.savetxt(work / "params.tsv", params, delimiter="\t", header="\t".join(PARAM_NAMES),
               comments="")
    dv, std = conf.dvars(values)
    np.savetxt(work / "dvars.tsv", np.column_stack([dv, std]), delimiter="\t",
               header="dvars\tstd_dvars", comments="")
    written = stages.confounds(work / "params.tsv", work / "dvars.tsv", work,
                               tissue_file=work / "tissue.tsv", tissue_meta=work / "tissue.json",
                               n_non_steady=n_non_steady)
    files["confounds"].write_bytes(Path(written["tsv"]).read_bytes())
    files["confounds"].with_suffix(".json").write_bytes(Path(written["json"]).read_bytes())
    # EEG: 4 channels at 100 Hz over the run, the spectrogram and band power of its volumes.
    names = ["Fz", "Cz", "Pz", "Oz"]
    sfreq = 100.0
    data = rng.standard_normal((len(names), int(n_volumes * TR * sfreq))) * 1e-6
    raw = mne.io.RawArray(data, mne.create_info(names, sfreq, "eeg"), verbose="error")
    raw.info["line_freq"] = 50.0
    add_volume_annotations(raw, np.arange(n_volumes - 1) * TR, TR)
    report = {"Reference": "average", "Filter": {"HighPass": 1.0, "LowPass": 30.0}}
    path, fields = write_preproc_eeg(raw, files["eeg"], report, volume_onsets_from_raw(raw))
    write_sidecar(path, {"TaskName": "rest", **fields})
    n_f, n_fr = 5, 3
    vols = np.arange(n_volumes)
    onsets = vols * TR
    n_cols = len(names) * 2
    res_ = SpectralResult(
        rng.random((n_volumes, len(names), n_f, n_fr)).astype(np.float32),
        np.linspace(1, 40, n_f), np.linspace(0.5, 1.5, n_fr), names, vols, onsets,
        [f"{c}_{b}" for c in names for b in ("alpha", "beta")], rng.random((n_volumes, n_cols)),
        vols, onsets, {"RepetitionTime": TR, "Bands": {"alpha": [8, 13], "beta": [13, 30]},
                       "STFT": {}, "EEGCoverage": {}})
    files["spectrogram"].with_suffix(".json").write_text(
        json.dumps(write_spectrogram_h5(files["spectrogram"], res_, "log-power")))
    files["bandpower"].with_suffix(".json").write_text(
        json.dumps(write_bandpower_tsv(files["bandpower"], res_)))
    return files
