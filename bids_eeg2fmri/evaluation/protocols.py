"""The seed papers' protocols as presets (``--protocol``), model-size presets (``--model-size``)
and the checks of the evaluation options (``--target-domain``, ``--allow-leaky-split``).

A protocol is a documented bundle of ``[group]`` settings: direction, models, split, window,
target and metric domain. It is applied beneath the user's own options: a setting given on the
command line, or changed from its default in the TOML file, wins. Settings the group level cannot
change (the participant level's STFT, e.g. Calhas' 64 × 134 × 10 input or Bruno's 1–30 Hz band)
are listed under ``participant`` for the user to set when preprocessing.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from ..errors import UsageError
from .domains import DOMAINS, INTENSITY_GRIDS

#: Name → description, ``group`` settings, and the participant-level options the paper used.
PROTOCOLS: dict[str, dict[str, Any]] = {
    "calhas2023": {
        "description": "Calhas & Henriques: topographic attention EEG→fMRI on intensity volumes, "
                       "RMSE/SSIM, subject-level split",
        "group": {"direction": "eeg2fmri", "models": ["ridge", "topo-attention"],
                  "target": "voxels", "target_domain": "intensity", "cv": "split"},
        "participant": {"stft_window": 1.0, "stft_scale": "magnitude"},
    },
    "bruno2025": {
        "description": "Bruno et al.: time-averaged channel × frequency spectrogram (1–30 Hz) to "
                       "intensity volumes, 0.5/0.25/0.25 split, PSNR/SSIM",
        "group": {"direction": "eeg2fmri", "models": ["ridge", "transformer"],
                  "target": "voxels", "target_domain": "intensity", "intensity_grid": "resize",
                  "cv": "split", "eeg_features": "bands"},
        "participant": {"eeg_l_freq": 1.0, "eeg_h_freq": 30.0},
    },
    "bricman2021": {
        "description": "Bricman & Borst: 30 s EEG windows to region BOLD, shuffled sample-level "
                       "split as reported (leaky: needs --allow-leaky-split; the leak-free "
                       "result is printed beside it)",
        "group": {"direction": "eeg2fmri", "models": ["ridge", "mlp"], "target": "regions",
                  "window_s": 30.0, "cv": "shuffled"},
        "participant": {},
    },
    "poster": {
        "description": "The poster's fMRI→EEG: 50 → 5 TR windows, 5-fold CV over subjects, "
                       "subject fine-tuning, r pooled over the dB spectrogram",
        "group": {"direction": "fmri2eeg", "models": ["ridge", "rnn-seq2seq"],
                  "window_trs": 50, "horizon_trs": 5, "cv": "kfold", "cv_folds": 5,
                  "finetune": True},
        "participant": {},
    },
}

#: ``--model-size paper``: widths and depths at the papers' scale, per model (keys a model does
#: not take are skipped). ``small`` keeps the registered defaults, sized for few subjects.
PAPER_SIZES: dict[str, dict[str, Any]] = {
    "mlp": {"hidden": 1024, "layers": 3},
    "cnn": {"filters": 32, "embedding": 64, "hidden": 512},
    "transformer": {"d_model": 256, "heads": 8, "encoder_layers": 4, "decoder_layers": 4,
                    "ff": 1024},
    "transformer-cnn": {"latent": 128, "filters": 32, "d_model": 256, "heads": 8,
                        "encoder_layers": 4, "decoder_layers": 4, "ff": 1024},
    "topo-attention": {"latent": 128, "attention_dim": 64, "filters": 32},
    "rnn-seq2seq": {"hidden": 128, "layers": 2},
}
LEAKY_REGIMES = ("shuffled",)
LEAKY_BANNER = ("LEAKY SPLIT: {regime} folds put near-copies of test samples into training; "
                "its scores are inflated and are shown only beside the leak-free result "
                "({leak_free}).")


def apply_protocol(config: Any, given: set[str] = frozenset()) -> None:
    """Fill ``config.group`` with ``config.group.protocol``'s settings, keeping those the user
    set (named in ``given``, or different from the default)."""
    gr = config.group
    if not gr.protocol:
        return
    if gr.protocol not in PROTOCOLS:
        raise UsageError(f"group.protocol must be one of {', '.join(PROTOCOLS)}; "
                         f"got {gr.protocol!r}")
    defaults = {f.name: (f.default_factory() if callable(f.default_factory)  # type: ignore[misc]
                         else f.default) for f in fields(type(gr))}
    for name, value in PROTOCOLS[gr.protocol]["group"].items():
        if name not in given and getattr(gr, name) == defaults[name]:
            setattr(gr, name, value)


def validate_evaluation(gr: Any) -> None:
    """Check the evaluation options of a ``GroupConfig``; exit 64 (UsageError) when a leaky split
    is asked for without ``--allow-leaky-split``."""
    if gr.target_domain not in DOMAINS:
        raise UsageError(f"group.target_domain must be one of {', '.join(DOMAINS)}; "
                         f"got {gr.target_domain!r}")
    if gr.intensity_grid not in INTENSITY_GRIDS:
        raise UsageError(f"group.intensity_grid must be one of {', '.join(INTENSITY_GRIDS)}; "
                         f"got {gr.intensity_grid!r}")
    if gr.intensity_grid != "model" and gr.target_domain != "intensity":
        raise UsageError("--intensity-grid resize applies to --target-domain intensity")
    if gr.model_size not in ("small", "paper"):
        raise UsageError(f"group.model_size must be small or paper; got {gr.model_size!r}")
    if gr.lr < 0 or gr.patience < 0 or gr.hrf_lag < 0:
        raise UsageError("group.lr, group.patience and group.hrf_lag must be >= 0")
    if gr.cv in LEAKY_REGIMES and not gr.allow_leaky_split:
        source = f" (asked for by --protocol {gr.protocol})" if gr.protocol else ""
        raise UsageError(f"--cv {gr.cv}{source} is a leaky split: neighbouring samples share "
                         "most of their EEG window and haemodynamic signal; add "
                         "--allow-leaky-split to run it beside the leak-free result")
    # --target-domain is EEG→fMRI's: fMRI→EEG always reads fluctuations (group/collect.py).


def size_hparams(size: str, models: list[str], available: dict[str, dict[str, Any]]
                 ) -> dict[str, dict[str, Any]]:
    """Hyper-parameter overrides of ``--model-size`` for ``models`` (``available``: each model's
    registered defaults, whose keys bound what is overridden)."""
    if size == "small":
        return {}
    return {m: {k: v for k, v in PAPER_SIZES.get(m, {}).items() if k in available.get(m, {})}
            for m in models}


def leak_free_regime(n_subjects: int) -> str:
    """The leak-free regime run beside a leaky one: LOSO, or time blocks for one subject."""
    return "loso" if n_subjects >= 2 else "blocked"
