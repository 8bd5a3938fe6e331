"""The methods paragraph (``logs/CITATION.md``) assembled from the stages that ran.

Each stage contributes one paragraph written from the options it actually used, in the manner of
fMRIPrep's boilerplate, followed by the software versions and references. The text may be copied
into a manuscript's methods section.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .._version import __version__
from ..bids.derivatives import atomic_write_text
from ..errors import UsageError
from .method_refs import METHOD_REFERENCES, seed_methods

# Distribution names whose versions the methods cite, in the order they appear.
SOFTWARE = (("bids_eeg2fmri", "bids_eeg2fmri"), ("MNE-Python", "mne"), ("MNE-BIDS", "mne-bids"),
            ("nilearn", "nilearn"), ("ANTsPy (antspyx)", "antspyx"), ("nipype", "nipype"),
            ("PyTorch", "torch"), ("NumPy", "numpy"), ("SciPy", "scipy"), ("nibabel", "nibabel"))

REFERENCES = {
    "power2012": "Power JD et al. (2012) Spurious but systematic correlations in functional "
                 "connectivity MRI networks arise from subject motion. NeuroImage 59:2142–2154.",
    "nichols2013": "Nichols TE (2013) Notes on creating a standardized version of DVARS. "
                   "arXiv:1704.01469.",
    "avants2008": "Avants BB et al. (2008) Symmetric diffeomorphic image registration with "
                  "cross-correlation. Medical Image Analysis 12:26–41.",
    "fonov2011": "Fonov V et al. (2011) Unbiased average age-appropriate atlases for pediatric "
                 "studies. NeuroImage 54:313–327.",
    "allen2000": "Allen PJ, Josephs O, Turner R (2000) A method for removing imaging artifact "
                 "from continuous EEG recorded during functional MRI. NeuroImage 12:230–239.",
    "niazy2005": "Niazy RK et al. (2005) Removal of FMRI environment artifacts from EEG data "
                 "using optimal basis sets. NeuroImage 28:720–737.",
    "horn1965": "Horn JL (1965) A rationale and test for the number of factors in factor "
                "analysis. Psychometrika 30:179–185.",
    "gramfort2013": "Gramfort A et al. (2013) MEG and EEG data analysis with MNE-Python. "
                    "Frontiers in Neuroscience 7:267.",
    "esteban2019": "Esteban O et al. (2019) fMRIPrep: a robust preprocessing pipeline for "
                   "functional MRI. Nature Methods 16:111–116.",
    **METHOD_REFERENCES,
}


def software_versions() -> dict[str, str]:
    """Installed versions of the cited packages (``not installed`` when absent)."""
    out = {}
    for label, dist in SOFTWARE:
        if dist == "bids_eeg2fmri":
            out[label] = __version__
            continue
        try:
            out[label] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[label] = "not installed"
    return out


def _v(versions: Mapping[str, str], label: str) -> str:
    return versions.get(label, "unknown")


def fmri_paragraph(options: Mapping[str, Any], versions: Mapping[str, str]
                   ) -> tuple[str, list[str]]:
    """Methods text of the fMRI stage from the ``[fmri]`` options (``Config.to_dict()["fmri"]``).

    Keys read: ``dummy_scans`` (int or None = detected), ``slice_time_ref`` (float),
    ``hmc`` (``torch``, ``ants``), ``registration`` (``syn``, ``syn-quick``, ``affine``),
    ``use_t1w`` (bool), ``output_res``
    (mm), ``fwhm`` (mm, 0 = none), ``high_pass`` (Hz, 0 = none), ``model_ready`` (bool),
    ``model_res`` (mm). Missing keys take the defaults.
    """
    if options.get("fmri_derivatives"):
        return fmriprep_paragraph(options, versions)
    dummy = options.get("dummy_scans")
    dummy_txt = (f"the first {int(dummy)} volumes were flagged as non-steady-state (dummy scans)"
                 if dummy is not None else
                 "non-steady-state volumes were identified as leading outliers (robust z > 3.5) "
                 "of the global signal")
    dummy_txt += ("; they were kept in every derivative, flagged in the confounds "
                  "(non_steady_state_outlier columns), and left out of slice-timing correction, "
                  "the reference volume, CompCor, the cosine basis, the filters and the modelling")
    hmc_txt = ("rigid registration (mean squares) of every volume to it with ANTs"
               if options.get("hmc", "torch") == "ants" else
               "rigid registration of all volumes to it at once (batched multi-resolution "
               "Gauss–Newton on the sum of squared differences after a global intensity scale, "
               "in PyTorch)")
    reg = options.get("registration", "syn")
    if reg == "affine":
        reg_txt = "rigid and affine stages (Mattes mutual information)"
    else:
        reg_txt = ("rigid and affine stages (Mattes mutual information) followed by symmetric "
                   "normalisation (SyN, local cross-correlation; Avants et al., 2008)"
                   + (", with reduced iterations (syn-quick)" if reg == "syn-quick" else ""))
    via = " through the participant's T1-weighted image" if options.get("use_t1w") else ""
    res = options.get("output_res", 2)
    text = (
        f"Functional data were preprocessed with bids_eeg2fmri {_v(versions, 'bids_eeg2fmri')}, "
        f"which uses ANTsPy {_v(versions, 'ANTsPy (antspyx)')}, nilearn "
        f"{_v(versions, 'nilearn')} and nipype {_v(versions, 'nipype')}. For each BOLD run, "
        f"{dummy_txt}. Slice-timing correction shifted each slice's time series to "
        f"{float(options.get('slice_time_ref', 0.5)):g} of the repetition time by a Fourier "
        "phase shift after linear detrending and tapered reflective padding. A reference volume "
        "(boldref) was computed as the median of the first ten steady-state volumes after rigid "
        f"alignment, and head motion was estimated by {hmc_txt}; framewise displacement "
        "(Power et al., 2012), DVARS and "
        "standardised DVARS (Nichols, 2013) were computed. The brain-extracted boldref was "
        f"registered{via} to the MNI152NLin2009aSym template (ICBM 2009a nonlinear symmetric, "
        f"Fonov et al., 2011, as shipped with nilearn) with {reg_txt}. Head-motion transforms "
        "and the boldref-to-template transform were composed and applied in a single cubic "
        f"B-spline interpolation per volume onto a {res} mm grid, and a brain mask (template "
        "brain mask restricted to voxels with EPI signal) was applied.")
    if float(options.get("fwhm", 0) or 0) > 0:
        text += (f" The series were smoothed with a Gaussian kernel of "
                 f"{float(options['fwhm']):g} mm FWHM within the brain mask.")
    if float(options.get("high_pass", 0) or 0) > 0:
        text += (f" Discrete cosine regressors below {float(options['high_pass']):g} Hz were "
                 "removed (high-pass filter).")
    if options.get("model_ready"):
        text += (f" For modelling, the same single-interpolation resampling produced a "
                 f"{options.get('model_res', 4)} mm series from which a second-order Legendre "
                 "trend was removed and each voxel was z-scored.")
    return text, ["power2012", "nichols2013", "avants2008", "fonov2011"]


def fmriprep_paragraph(options: Mapping[str, Any], versions: Mapping[str, str]
                       ) -> tuple[str, list[str]]:
    """Methods text when fMRIPrep's outputs were the fMRI input (``--fmri-derivatives``)."""
    dummy = options.get("dummy_scans")
    res = options.get("output_res", 2)
    text = (
        "Functional data had been preprocessed with fMRIPrep (Esteban et al., 2019); its "
        "preprocessed BOLD series in MNI space, brain masks and confounds were taken as input "
        f"by bids_eeg2fmri {_v(versions, 'bids_eeg2fmri')} and resampled by world coordinates "
        f"(nilearn {_v(versions, 'nilearn')}, third-order spline) onto a {res} mm "
        "MNI152NLin2009aSym grid without a template-to-template transform. "
        + (f"The first {int(dummy)} volumes were flagged as non-steady-state (dummy scans) "
           "instead of fMRIPrep's flags." if dummy is not None else
           "The volumes fMRIPrep flagged as non-steady-state stayed in the series, flagged.")
        + " Flagged volumes were left out of the filters and the modelling.")
    if options.get("model_ready"):
        text += (f" For modelling, a {options.get('model_res', 4)} mm series was derived by "
                 "averaging within the brain mask, a second-order Legendre trend was removed and "
                 "each voxel was z-scored.")
    return text, ["esteban2019"]


def eeg_paragraph(options: Mapping[str, Any], versions: Mapping[str, str]) -> tuple[str, list[str]]:
    """Methods text of the EEG stage from the ``[eeg]`` options (``Config.to_dict()["eeg"]``).

    Keys read: ``gradient_correction`` / ``bcg_correction`` (``auto``, ``aas``/``obs``,
    ``off``), ``eeg_sfreq``, ``eeg_l_freq``, ``eeg_h_freq`` (Hz), ``notch`` (bool),
    ``stft_window`` (s), ``stft_overlap`` (fraction), ``stft_taper``, ``stft_scale``,
    ``bands`` (name → [low, high) Hz).
    """
    grad = options.get("gradient_correction", "auto")
    bcg = options.get("bcg_correction", "auto")
    refs = ["gramfort2013"]
    parts = [
        f"EEG was preprocessed with bids_eeg2fmri {_v(versions, 'bids_eeg2fmri')} using "
        f"MNE-Python {_v(versions, 'MNE-Python')} (Gramfort et al., 2013) and MNE-BIDS "
        f"{_v(versions, 'MNE-BIDS')}. Recordings were read with their BIDS sidecars (channel "
        "types, bad channels, electrode positions, events). Scanner volume triggers were "
        "identified from the event markers, checked against the BOLD run (number of volumes and "
        "median spacing equal to the repetition time), isolated missing triggers interpolated "
        "and duplicates removed."]
    if grad != "off":
        parts.append(
            ("Where a volume-locked artefact was detected (ratio of the average volume epoch to "
             "its residual above 1), MR" if grad == "auto" else "MR")
            + " gradient artefacts were removed by average artefact subtraction (Allen et al., "
              "2000) with a sliding template of the 8 neighbouring volumes, at the original "
              "sampling rate.")
        refs.append("allen2000")
    notch = " notch-filtered at the power-line frequency and its harmonics and" \
        if options.get("notch", True) else ""
    parts.append(
        f"Data were resampled to {float(options.get('eeg_sfreq', 250)):g} Hz (polyphase),{notch} "
        f"band-pass filtered between {float(options.get('eeg_l_freq', 1)):g} and "
        f"{float(options.get('eeg_h_freq', 30)):g} Hz (zero-phase FIR).")
    if bcg != "off":
        parts.append(
            ("When an ECG channel was present, b" if bcg == "auto" else "B")
            + "allistocardiogram artefacts were removed by PCA optimal basis sets (Niazy et al., "
              "2005) fitted to heartbeat epochs located from R-peaks of the ECG channel and "
              "centred on the pulse artefact, with the number of principal components chosen by "
              "parallel analysis (Horn, 1965).")
        refs += ["niazy2005", "horn1965"]
    bands = options.get("bands") or {"delta": [1, 4], "theta": [4, 8], "alpha": [8, 13],
                                      "beta": [13, 30]}
    band_txt = ", ".join(f"{k} {float(v[0]):g}–{float(v[1]):g}" for k, v in bands.items())
    parts.append(
        "Flat and noisy channels were interpolated (spherical splines) and the EEG re-referenced "
        "to the average. For each fMRI volume, the EEG of its repetition time was transformed "
        f"with a short-time Fourier transform ({float(options.get('stft_window', 1)):g} s "
        f"{options.get('stft_taper', 'hann')} windows, "
        f"{100 * float(options.get('stft_overlap', 0.5)):g} % overlap, "
        f"0–{float(options.get('eeg_h_freq', 30)):g} Hz, stored as "
        f"{options.get('stft_scale', 'log-power')}) and band power was computed per channel "
        f"({band_txt} Hz).")
    return " ".join(parts), refs


def models_paragraph(options: Mapping[str, Any], versions: Mapping[str, str]
                     ) -> tuple[str, list[str]]:
    """Methods text of the group-level modelling from a description of what was trained.

    Keys read: ``models`` (list of registry names), ``direction`` (``eeg2fmri``, ``fmri2eeg``,
    ``both``), ``cv`` (``loso``, ``kfold``, ``blocked``, ``split``), ``cv_folds`` (int),
    ``target`` (``regions`` or ``voxels``), ``atlas``, ``window_s``, ``epochs``,
    ``n_subjects`` (int, optional), ``device`` (optional), ``finetune`` (bool).
    """
    names = list(options.get("models") or [])
    direction = options.get("direction", "both")
    dir_txt = {"eeg2fmri": "from EEG to fMRI", "fmri2eeg": "from fMRI to EEG",
               "both": "in both directions (EEG→fMRI and fMRI→EEG)"}.get(direction, direction)
    cv = options.get("cv", "loso")
    cv_txt = {"loso": "leave-one-subject-out cross-validation",
              "kfold": f"{options.get('cv_folds', 5)}-fold cross-validation over subjects",
              "blocked": f"blocked within-subject cross-validation ({options.get('cv_folds', 5)} "
                         "contiguous blocks per run, training samples within the haemodynamic "
                         "reach of the test block dropped)",
              "split": "a 50/25/25 % split of subjects into training, validation and test"
              }.get(cv, cv)
    subjects = options.get("n_subjects")
    target = options.get("target", "regions")
    tgt_txt = (f"the mean BOLD signal of the {options.get('atlas', 'harvard-oxford')} atlas "
               "regions" if target == "regions" else "the model-ready BOLD voxels")
    raw = options.get("eeg_features") == "raw"
    window_s = float(options.get("raw_window_s" if raw else "window_s", 30 if raw else 20))
    text = (
        f"Models translating {dir_txt} were trained with bids_eeg2fmri "
        f"{_v(versions, 'bids_eeg2fmri')} and PyTorch {_v(versions, 'PyTorch')}"
        + (f" on {subjects} participants" if subjects else "")
        + f": {', '.join(names) if names else 'the default models'}. Targets (EEG→fMRI) were "
        f"{tgt_txt}; inputs were "
        + {"bands": "the mean log power of each EEG band per channel and TR",
           "raw": "the cleaned EEG time series, band-pass filtered to "
                  + "-".join(f"{float(v):g}" for v in options.get("raw_eeg_band", (1, 30)))
                  + f" Hz and resampled to {float(options.get('raw_eeg_sfreq', 64)):g} Hz"
           }.get(options.get("eeg_features"), "per-TR EEG spectrograms")
        + f" over a {window_s:g} s window"
        + ("; fMRI→EEG inputs were the leading "
           f"{int(options.get('pca_components', 20))} principal components of the voxel time "
           "series, fitted on the training data of each fold"
           if options.get("fmri_input") == "pca" and direction != "eeg2fmri" else "")
        + ". Normalisation statistics were estimated "
        f"on training data only. Performance was estimated by {cv_txt}; every fold reports the "
        "training-mean and subject-mean baselines next to each model"
        + (", and, for simulated data, the noise ceiling" if options.get("simulated") else "")
        + ". Deep models were trained with AdamW, gradient clipping and early stopping on a "
        f"validation block (at most {int(options.get('epochs', 60))} epochs)"
        + (f" on {options['device']}" if options.get("device") else "") + ".")
    if options.get("finetune"):
        text += (" For each held-out participant, the base model was fine-tuned on the first "
                 "half of its data and evaluated on the rest after a buffer.")
    seeds, refs = seed_methods(options, names)
    if seeds:
        text += " " + seeds
    sources = model_sources(names, direction)
    if sources:
        text += " Model sources: " + "; ".join(f"{n} — {p}" for n, p in sources.items()) + "."
    return text, refs


def model_sources(names: Sequence[str], direction: str = "both") -> dict[str, str]:
    """The registry's ``paper`` note of each named model (first direction that has it)."""
    from ..models import registry

    dirs = ["eeg2fmri", "fmri2eeg"] if direction == "both" else [direction]
    out = {}
    for name in names:
        for d in dirs:
            try:
                paper = registry.entry(name, d).paper
            except UsageError:  # the name exists in the other direction only
                continue
            if paper:
                out[f"{name} ({d})" if len(dirs) > 1 else name] = paper
    return out


_PARAGRAPHS = {"fmri": ("Functional MRI", fmri_paragraph), "eeg": ("EEG", eeg_paragraph),
               "models": ("Models", models_paragraph)}


def write_citation(out_dir: str | os.PathLike, stages: Mapping[str, Mapping[str, Any] | bool]
                   ) -> Path:
    """Write ``OUT/logs/CITATION.md`` from the stages that ran.

    Parameters
    ----------
    out_dir
        The derivatives dataset.
    stages
        Stage name → its options (or ``True`` for the defaults); stages absent, ``False`` or
        ``None`` did not run. Names: ``fmri`` (``Config.to_dict()["fmri"]`` plus
        ``dummy_scans``), ``eeg`` (``Config.to_dict()["eeg"]``), ``models`` (see
        :func:`models_paragraph`: ``models``, ``direction``, ``cv``, ``cv_folds``, ``target``,
        ``atlas``, ``window_s``, ``epochs``, ``n_subjects``, ``device``, ``finetune``,
        ``simulated``).

    Returns
    -------
    pathlib.Path
        ``OUT/logs/CITATION.md``.

    Raises
    ------
    ValueError
        For an unknown stage name.
    """
    unknown = sorted(set(stages) - set(_PARAGRAPHS))
    if unknown:
        raise ValueError(f"unknown stages {unknown}; known: {sorted(_PARAGRAPHS)}")
    versions = software_versions()
    lines = ["# Methods", "",
             "*This text was generated by bids_eeg2fmri from the options of this run; it may be "
             "copied into a manuscript, and is released under CC0.*", ""]
    refs: list[str] = []
    ran = [k for k in _PARAGRAPHS if stages.get(k)]
    if not ran:
        lines += ["No processing stage ran.", ""]
    for key in ran:
        title, make = _PARAGRAPHS[key]
        opts = stages[key] if isinstance(stages[key], Mapping) else {}
        text, r = make(opts, versions)
        lines += [f"## {title}", "", text, ""]
        refs += [x for x in r if x not in refs]
    lines += ["## Software", ""]
    lines += [f"- {label} {ver}" for label, ver in versions.items()]
    lines.append("")
    if refs:
        lines += ["## References", ""]
        lines += [f"- {REFERENCES[r]}" for r in refs]
        lines.append("")
    return atomic_write_text(Path(out_dir) / "logs" / "CITATION.md", "\n".join(lines))


def update_citation(out_dir: str | os.PathLike,
                    stages: Mapping[str, Mapping[str, Any] | bool]) -> Path:
    """Merge ``stages`` into those earlier runs on ``OUT`` recorded, then write CITATION.md.

    One participant (a SLURM array task, or applying a model to an EEG-only participant) or the
    group level alone runs only some stages; the methods text must still describe every stage
    that produced the dataset, so each run's stages replace their earlier options in
    ``OUT/logs/citation.json`` and the others stay.

    Parameters
    ----------
    out_dir
        The derivatives dataset.
    stages
        As :func:`write_citation`.

    Returns
    -------
    pathlib.Path
        ``OUT/logs/CITATION.md``.
    """
    record = Path(out_dir) / "logs" / "citation.json"
    try:
        earlier = json.loads(record.read_text())
    except (OSError, ValueError):
        earlier = {}
    if not isinstance(earlier, dict):
        earlier = {}
    merged = {k: v for k, v in earlier.items() if k in _PARAGRAPHS and v}
    merged.update({k: (dict(v) if isinstance(v, Mapping) else v) for k, v in stages.items() if v})
    atomic_write_text(record, json.dumps(merged, indent=2, sort_keys=True, default=str) + "\n")
    return write_citation(out_dir, merged)


def stages_from_config(config_dict: Mapping[str, Any], *, ran: Sequence[str],
                       extra: Mapping[str, Mapping[str, Any]] | None = None
                       ) -> dict[str, dict[str, Any]]:
    """Build ``stages`` for :func:`write_citation` from ``Config.to_dict()``.

    Parameters
    ----------
    config_dict
        ``Config.to_dict()``.
    ran
        Stages that ran: any of ``fmri``, ``eeg``, ``models``.
    extra
        Stage → additional keys (e.g. ``{"models": {"n_subjects": 3, "simulated": True}}``).
    """
    src = {"fmri": "fmri", "eeg": "eeg", "models": "group"}
    out = {}
    for stage in ran:
        if stage not in src:
            raise ValueError(f"unknown stage {stage!r}")
        out[stage] = {**dict(config_dict.get(src[stage], {})), **dict((extra or {}).get(stage, {}))}
    return out
