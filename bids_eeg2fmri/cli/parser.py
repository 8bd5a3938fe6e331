"""The BIDS-Apps command line: ``bids-eeg2fmri BIDS_DIR OUTPUT_DIR {participant,group} [options]``.

Every option defaults to "not given" so that values from ``--config FILE.toml`` are overridden only
by flags the user actually typed. Each option's destination is a field name of
:class:`bids_eeg2fmri.config.Config`.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .._version import __version__
from ..config import ANALYSIS_LEVELS, VALIDATION_REGIMES
from ..errors import ExitCode, UsageError, UserError

PROG = "bids-eeg2fmri"


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser that raises UsageError (exit 64) instead of exiting with 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """Create the argument parser (no defaults: absent flags do not appear in the result)."""
    p = _Parser(prog=PROG, argument_default=argparse.SUPPRESS,
                description="Preprocess simultaneous EEG-fMRI in BIDS and train models that translate "
                            "between the two modalities (a BIDS-App).",
                epilog="Exit codes: 0 ok, 1 failure, 16 BIDS validation failed, 17 unknown analysis "
                       "level, 18 no data selected, 64 usage error, 65 bad input file, 66 no input, "
                       "73 cannot create output, 74 I/O error.")
    p.add_argument("bids_dir", type=Path, help="root of the input BIDS dataset (read only)")
    p.add_argument("output_dir", type=Path, help="where derivatives are written")
    p.add_argument("analysis_level", help="participant or group")
    p.add_argument("-v", "--version", action="version", version=f"{PROG} {__version__}")

    g = p.add_argument_group("selecting data")
    g.add_argument("--participant-label", "--participant_label", dest="participant_label", nargs="+",
                   metavar="LABEL", help="participants to process (01 or sub-01); default all")
    g.add_argument("--session-label", dest="session_label", nargs="+", metavar="LABEL")
    g.add_argument("--task-label", dest="task_label", nargs="+", metavar="LABEL")
    g.add_argument("--bids-filter-file", dest="bids_filter_file", type=Path, metavar="FILE",
                   help='JSON {"bold": {...}, "eeg": {...}, "t1w": {...}} of pybids entity queries')
    g.add_argument("--bids-database-dir", dest="bids_database_dir", type=Path, metavar="DIR",
                   help="reuse (or create) a pybids index here to start faster on large datasets")
    g.add_argument("--skip-bids-validation", "--skip_bids_validation", dest="skip_bids_validation",
                   action="store_true", help="do not run bids-validator-deno on the input")

    g = p.add_argument_group("execution")
    g.add_argument("--config", dest="config_file", type=Path, metavar="FILE.toml",
                   help="settings file; flags given here override its values")
    g.add_argument("-w", "--work-dir", dest="work_dir", type=Path, metavar="DIR",
                   help="intermediate results, kept for caching and resuming")
    g.add_argument("--nprocs", "--n-cpus", dest="nprocs", type=_positive_int, metavar="N",
                   help="maximum parallel processes (0 = all cores)")
    g.add_argument("--omp-nthreads", dest="omp_nthreads", type=_positive_int, metavar="N",
                   help="threads per process for ITK/BLAS (0 = automatic)")
    g.add_argument("--mem-gb", "--mem", dest="mem_gb", type=float, metavar="GB",
                   help="memory limit for scheduling (0 = no limit)")
    g.add_argument("--stop-on-first-crash", dest="stop_on_first_crash", action="store_true")
    g.add_argument("--random-seed", dest="random_seed", type=_positive_int, metavar="N")
    g.add_argument("--device", dest="device", choices=("auto", "cpu", "cuda"),
                   help="torch device for models (auto = CUDA when available)")
    g.add_argument("--model-dir", dest="model_dir", type=Path, metavar="DIR",
                   help="a trained model to apply at the participant level")
    g.add_argument("--dry-run", dest="dry_run", action="store_true",
                   help="validate, index and print the plan, then stop before processing")
    g.add_argument("--debug", dest="debug", action="store_true",
                   help="show tracebacks and debug logging")

    g = p.add_argument_group("fMRI preprocessing")
    g.add_argument("--dummy-scans", dest="dummy_scans", type=_positive_int, metavar="N",
                   help="leading non-steady-state volumes: kept, flagged in the confounds and "
                        "left out downstream (default: detect automatically)")
    g.add_argument("--slice-time-ref", dest="slice_time_ref", type=float, metavar="FRACTION",
                   help="slice-timing reference as a fraction of the TR (0-1, default 0.5)")
    g.add_argument("--hmc", dest="hmc", choices=("torch", "ants"),
                   help="head-motion correction: batched torch registration of all volumes "
                        "(default; CUDA when present) or one antsRegistration per volume")
    g.add_argument("--registration", dest="registration", choices=("syn", "syn-quick", "affine"))
    g.add_argument("--use-t1w", dest="use_t1w", action="store_true",
                   help="register BOLD to MNI through the participant's T1w")
    g.add_argument("--output-res", dest="output_res", type=int, choices=(1, 2, 3, 4), metavar="MM")
    g.add_argument("--fwhm", dest="fwhm", type=float, metavar="MM", help="spatial smoothing (0 = off)")
    g.add_argument("--high-pass", dest="high_pass", type=float, metavar="HZ",
                   help="temporal high-pass cut-off (0 = off)")
    g.add_argument("--fmri-derivatives", dest="fmri_derivatives", type=Path, metavar="DIR",
                   help="take preprocessed BOLD, brain masks and confounds from this fMRIPrep "
                        "output folder instead of preprocessing the fMRI")
    g.add_argument("--model-ready", dest="model_ready", action="store_true",
                   help="also write desc-model_bold: masked, detrended, z-scored on --model-res")
    g.add_argument("--model-res", dest="model_res", type=int, choices=(1, 2, 3, 4), metavar="MM",
                   help="grid of the model-ready BOLD (default 4 mm)")

    g = p.add_argument_group("EEG preprocessing")
    g.add_argument("--eeg-derivatives", dest="eeg_derivatives", type=Path, metavar="DIR",
                   help="take already gradient/BCG-corrected EEG from this derivatives folder")
    g.add_argument("--min-eeg-coverage", dest="min_eeg_coverage", type=float, metavar="FRACTION",
                   help="refuse a run whose EEG covers less than this fraction of its BOLD volumes "
                        "(default 0.5); uncovered volumes are left out")
    g.add_argument("--volume-marker", dest="volume_marker", metavar="NAME",
                   help="annotation marking volume onsets (default: auto)")
    g.add_argument("--assume-eeg-bold-sync", dest="assume_eeg_bold_sync", type=float,
                   metavar="OFFSET_S", help="without volume markers, BOLD starts OFFSET_S into the EEG")
    g.add_argument("--gradient-correction", dest="gradient_correction", choices=("auto", "aas", "off"))
    g.add_argument("--bcg-correction", dest="bcg_correction", choices=("auto", "obs", "off"))
    g.add_argument("--eeg-l-freq", dest="eeg_l_freq", type=float, metavar="HZ")
    g.add_argument("--eeg-h-freq", dest="eeg_h_freq", type=float, metavar="HZ")
    g.add_argument("--no-notch", dest="notch", action="store_false", help="skip the line-noise notch")
    g.add_argument("--eeg-sfreq", dest="eeg_sfreq", type=float, metavar="HZ")
    g.add_argument("--stft-window", dest="stft_window", type=float, metavar="S")
    g.add_argument("--stft-overlap", dest="stft_overlap", type=float, metavar="FRACTION")
    g.add_argument("--stft-taper", dest="stft_taper", metavar="NAME",
                   help="scipy.signal window of the STFT frames (default hann)")
    g.add_argument("--stft-scale", dest="stft_scale", choices=("log-power", "magnitude"))
    g.add_argument("--eeg-output-format", dest="eeg_output_format", choices=("brainvision", "fif"),
                   help="file format of the cleaned EEG (desc-preproc_eeg): BrainVision (BIDS "
                        "EEG, the default) or FIF")
    g.add_argument("--stft-context", dest="stft_context", type=_positive_int, metavar="N_TR",
                   help="extend each volume's STFT segment back over N preceding TRs (default 0)")
    g.add_argument("--stft-window-trs", dest="stft_window_trs", type=float, metavar="N_TR",
                   help="STFT frame length in TRs (overrides --stft-window; default 0: unused)")
    g.add_argument("--stft-fmin", dest="stft_fmin", type=float, metavar="HZ",
                   help="drop spectrogram bins below HZ (default 0: keep the DC bin)")
    g.add_argument("--stft-fmax", dest="stft_fmax", type=float, metavar="HZ",
                   help="keep spectrogram bins up to HZ (default 0: --eeg-h-freq)")
    g = p.add_argument_group("group level: models and cross-validation")
    g.add_argument("--direction", dest="direction", choices=("eeg2fmri", "fmri2eeg", "both"))
    g.add_argument("--models", dest="models", nargs="+", metavar="NAME",
                   help="models to train (default: ridge plus one deep model per direction)")
    g.add_argument("--cv", dest="cv", choices=("loso", "kfold", "blocked", "split", "shuffled"),
                   help="cross-validation regime (default loso; shuffled is leaky and needs "
                        "--allow-leaky-split)")
    g.add_argument("--cv-folds", dest="cv_folds", type=int, metavar="K")
    g.add_argument("--target", dest="target", choices=("voxels", "regions"),
                   help="EEG→fMRI targets: model-grid voxels or atlas regions")
    g.add_argument("--atlas", dest="atlas", choices=("harvard-oxford", "aal"))
    g.add_argument("--window", dest="window_s", type=float, metavar="S",
                   help="EEG history per target volume in seconds (default 20)")
    g.add_argument("--epochs", dest="epochs", type=int, metavar="N")
    g.add_argument("--batch-size", dest="batch_size", type=int, metavar="N")
    g.add_argument("--fd-threshold", dest="fd_threshold", type=float, metavar="MM",
                   help="drop target volumes with framewise displacement above this (0 = keep all)")
    g.add_argument("--resume", dest="resume", action="store_true",
                   help="continue interrupted training from the last checkpoints")
    g.add_argument("--finetune", dest="finetune", action="store_true",
                   help="fine-tune a base model on the participant's own data before applying it; "
                        "at the group level, also score base vs fine-tuned fMRI→EEG models")
    g.add_argument("--regions", dest="regions", nargs="+", metavar="NAME",
                   help="restrict atlas regions to these names (fMRI→EEG keeps the non-GM part)")
    g.add_argument("--window-trs", dest="window_trs", type=int, metavar="N",
                   help="fMRI→EEG: BOLD volumes per sample (default 50)")
    g.add_argument("--horizon-trs", dest="horizon_trs", type=int, metavar="N",
                   help="fMRI→EEG: EEG TRs predicted per sample, centred in the window, or "
                        "ending --hrf-lag before its end (default 5)")
    g.add_argument("--weight-decay", dest="weight_decay", type=float, metavar="W",
                   help="AdamW weight decay of the deep models (default 0.01)")
    g.add_argument("--eeg-features", dest="eeg_features", choices=("spectrogram", "bands", "raw"),
                   help="EEG representation: every STFT bin and frame (default); the mean log "
                        "power of each EEG band ([eeg] bands) per channel and TR (EEG→fMRI input "
                        "and fMRI→EEG target); or the cleaned EEG itself, band-limited and "
                        "resampled (EEG→fMRI input, Bricman & Borst 2021)")
    g.add_argument("--raw-eeg-band", dest="raw_eeg_band", nargs=2, type=float, metavar=("LO", "HI"),
                   help="--eeg-features raw: pass band in Hz (default 1 30)")
    g.add_argument("--raw-eeg-sfreq", dest="raw_eeg_sfreq", type=float, metavar="HZ",
                   help="--eeg-features raw: sampling rate of the input (default 64)")
    g.add_argument("--raw-window", dest="raw_window_s", type=float, metavar="S",
                   help="--eeg-features raw: EEG per target volume in seconds (default 30)")
    g.add_argument("--reconstruct", dest="reconstruct", choices=("sliding", "segments"),
                   help="fMRI→EEG whole-run spectrogram: one model's sliding windows, overlaps "
                        "averaged (default), or one model per temporal segment fine-tuned on the "
                        "participant's other segments (the poster; needs its EEG)")
    g.add_argument("--segments", dest="segments", type=int, metavar="N",
                   help="--reconstruct segments: segments per run (default 5)")
    g.add_argument("--eeg-channels", dest="eeg_channels", choices=("common", "interpolate"),
                   help="runs recorded with different caps: train on the channels all runs "
                        "share (default), or interpolate missing channels (spherical splines)")
    g.add_argument("--fmri-input", dest="fmri_input", choices=("regions", "pca"),
                   help="fMRI→EEG input: GM parts of atlas regions + non-GM (default), or "
                        "principal components of the model-grid voxels fitted on each fold's "
                        "training data")
    g.add_argument("--pca-components", dest="pca_components", type=int, metavar="K",
                   help="components of --fmri-input pca (default 20)")
    g = p.add_argument_group("group level: evaluation and training (docs/evaluation.md)")
    g.add_argument("--target-domain", dest="target_domain", choices=("fluctuations", "intensity"),
                   help="EEG→fMRI targets: detrended, z-scored fluctuations (default) or BOLD "
                        "intensity per volume, min-max normalised as the papers do")
    g.add_argument("--intensity-grid", dest="intensity_grid", choices=("model", "resize"),
                   help="grid of --target-domain intensity: the model grid (--model-res; 2 mm is "
                        "the papers' MNI grid) or a native-like 64x64x30 resize")
    g.add_argument("--protocol", dest="protocol",
                   choices=("calhas2023", "bruno2025", "bricman2021", "poster"),
                   help="a seed paper's protocol: a documented bundle of EEG features "
                        "(participant level), model, split, window, domain and metrics (group "
                        "level); explicit options win")
    g.add_argument("--allow-leaky-split", dest="allow_leaky_split", action="store_true",
                   help="run a leaky sample-level split (--cv shuffled, a protocol's) beside the "
                        "leak-free one, with a banner in the report and model card")
    g.add_argument("--lr", dest="lr", type=float, metavar="LR",
                   help="learning rate of the deep models (default: each model's paper value)")
    g.add_argument("--patience", dest="patience", type=int, metavar="N",
                   help="epochs without validation improvement before stopping (default 10; "
                        "0 disables early stopping)")
    g.add_argument("--validation", dest="validation", choices=VALIDATION_REGIMES,
                   help="deep models' early stopping and shrinkage: on the buffered last 20 %% of "
                        "every training run (time, default) or by inner leave-one-participant-out "
                        "over the training participants (participant; ~(k+1)x the training time)")
    g.add_argument("--hrf-lag", dest="hrf_lag", type=float, metavar="S",
                   help="seconds (rounded to TRs) the BOLD lags the EEG: EEG→fMRI, between the "
                        "EEG window's end and the target; fMRI→EEG, from the predicted EEG to the "
                        "BOLD window's end (default 0: centred)")
    g.add_argument("--model-size", dest="model_size", choices=("small", "paper"),
                   help="deep models' width/depth: small (default, fast) or the papers' values")
    g = p.add_argument_group("group level: single-region analysis (fMRI→EEG)")
    g.add_argument("--single-region", dest="single_region", action="store_true",
                   help="for each region, compare a model on non-GM + that region with non-GM "
                        "alone per EEG band cell, tested across subjects with FDR (trains one "
                        "cross-validation per region; regions run in --nprocs processes)")
    g.add_argument("--single-region-regions", dest="single_region_regions", nargs="+",
                   metavar="NAME", help="regions to test (default: every region)")
    g.add_argument("--single-region-model", dest="single_region_model", metavar="NAME",
                   help="fMRI→EEG model of the analysis (default ridge)")
    g.add_argument("--single-region-test", dest="single_region_test",
                   choices=("ttest", "permutation"),
                   help="paired t-test or exact sign-flip permutation across subjects")
    g = p.add_argument_group("group level: classification and attribution (EEG→fMRI, Calhas)")
    g.add_argument("--classify", dest="classify", metavar="COLUMN",
                   help="classify participants by this participants.tsv column from their EEG "
                        "through the frozen synthesis model (linear head, participant-wise CV, "
                        "permutation test)")
    g.add_argument("--classify-model", dest="classify_model", metavar="NAME",
                   help="EEG→fMRI model whose encoder is frozen (default: the first deep model "
                        "of --models, else the first)")
    g.add_argument("--classify-objective", dest="classify_objective",
                   choices=("crossentropy", "contrastive", "both"),
                   help="linear head trained with cross-entropy (default), a contrastive loss, "
                        "or both")
    g.add_argument("--classify-permutations", dest="classify_permutations", type=int,
                   metavar="N", help="label permutations of the test (default 200; 0 = none)")
    g.add_argument("--attribution", dest="attribution", action="store_true",
                   help="integrated-gradients (ridge: coefficient × input) relevance of EEG "
                        "channel × frequency × time for every EEG→fMRI model")
    g.add_argument("--attribution-region", dest="attribution_region", metavar="NAME",
                   help="explain this target region (default: the whole volume)")
    g.add_argument("--attribution-steps", dest="attribution_steps", type=int, metavar="N",
                   help="integrated-gradients path steps (default 32)")
    return p


def parse_args(argv: list[str] | None = None) -> tuple[dict[str, Any], Path | None]:
    """Parse the command line.

    Parameters
    ----------
    argv
        Arguments without the program name; ``None`` reads ``sys.argv``.

    Returns
    -------
    values, config_file
        The given options keyed by config field name, and the ``--config`` file if any.

    Raises
    ------
    UsageError
        For malformed arguments (exit 64).
    UserError
        Exit 17 for an unknown analysis level.
    """
    ns = vars(build_parser().parse_args(argv))
    config_file = ns.pop("config_file", None)
    level = ns.get("analysis_level")
    if level not in ANALYSIS_LEVELS:
        raise UserError(f"unknown analysis level {level!r}; choose one of {', '.join(ANALYSIS_LEVELS)}",
                        ExitCode.ANALYSIS_LEVEL)
    return ns, config_file
