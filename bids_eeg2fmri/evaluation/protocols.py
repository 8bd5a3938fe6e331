"""The seed papers' protocols as presets (``--protocol``), model-size presets (``--model-size``)
and the checks of the evaluation options (``--target-domain``, ``--allow-leaky-split``).

A protocol is a documented bundle of settings: the EEG features the paper used (``participant``:
``[eeg]`` settings, applied when preprocessing) and its direction, models, split, window, target
and metric domain (``group``: ``[group]`` settings). Both are applied beneath the user's own
options: a setting given on the command line, or changed from its default in the TOML file, wins.
The group level checks that the derivatives it reads were made with the protocol's participant
settings (:mod:`.participant_check`).

Where each value comes from is in ``docs/evaluation.md`` (*Sources*).
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
        # window_s 0.5: one volume per sample (ceil(0.5 s / TR) = 1), since its spectrogram already
        # holds the paper's 10 TRs of EEG (--stft-context 9 below).
        "group": {"direction": "eeg2fmri", "models": ["ridge", "topo-attention"],
                  "target": "voxels", "target_domain": "intensity", "cv": "split",
                  "window_s": 0.5},
        # DCalhas/eeg_to_fmri src/utils/eeg_utils.py (stft, compute_fft, fs_01 = 250),
        # fmri_utils.py (TR_01 = 2.160) and the training scripts (interval_eeg = 10). Their STFT is
        # one untapered FFT per TR (window = TR, no overlap), |FFT| without the DC bin, bins of the
        # first quarter of the FFT (f < fs/4): 64 × 134 × 10 at 250 Hz and TR 2.16 s.
        "participant": {"eeg_sfreq": 250.0, "stft_window_trs": 1.0, "stft_overlap": 0.0,
                        "stft_taper": "boxcar", "stft_scale": "magnitude", "stft_context": 9,
                        # just below fs/4 = 62.5 Hz; 0.1 Hz drops the DC bin only
                        "stft_fmin": 0.1, "stft_fmax": 62.4,
                        # Their code filters nothing (it reads the dataset's cleaned export);
                        # the low-pass moves to the top of the STFT band so no kept bin is cut.
                        "eeg_h_freq": 62.4},
    },
    "bruno2025": {
        "description": "Bruno et al.: time-averaged channel × frequency spectrogram (1–30 Hz) to "
                       "intensity volumes, 0.5/0.25/0.25 split, PSNR/SSIM",
        "group": {"direction": "eeg2fmri", "models": ["ridge", "transformer"],
                  "target": "voxels", "target_domain": "intensity", "intensity_grid": "resize",
                  "cv": "split", "eeg_features": "bands"},
        # Resample to 1 kHz, band-pass 1–30 Hz (from the reading of the paper: unverified,
        # see docs/evaluation.md); the time averaging over each TR's frames is the group level's
        # --eeg-features bands pooling.
        "participant": {"eeg_sfreq": 1000.0, "eeg_l_freq": 1.0, "eeg_h_freq": 30.0},
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
#: not take are skipped). ``small`` keeps the registered defaults, sized for few subjects. The
#: source of every value is in docs/evaluation.md (*Sources*); "unverified" there means neither
#: the paper's text nor code in reach states it.
PAPER_SIZES: dict[str, dict[str, Any]] = {
    # paulbricman/EEG2fMRI code/model.py DenseModel: three 1000-wide hidden layers, dropout 0.5,
    # a 100-unit per-channel embedding (their output bottleneck of 100 units is left out)
    "mlp": {"hidden": 1000, "layers": 3, "dropout": 0.5, "embedding": 100},
    # unverified: their ConvolutionalModel (512 filters across all channels, 1000-wide dense
    # layers, a 16-filter 3-D decoder) has no per-channel counterpart of these sizes
    "cnn": {"filters": 32, "embedding": 64, "hidden": 512},
    # paulbricman/EEG2fMRI code/model.py TransformerModel: nn.Transformer(d_model=64,
    # dim_feedforward=512, dropout=0.5) with torch's default 8 heads and 6 + 6 layers
    "transformer": {"d_model": 64, "heads": 8, "encoder_layers": 6, "decoder_layers": 6,
                    "ff": 512, "dropout": 0.5},
    # unverified (Bruno et al. 2025: code not found)
    "transformer-cnn": {"latent": 128, "filters": 32, "d_model": 256, "heads": 8,
                        "encoder_layers": 4, "decoder_layers": 4, "ff": 1024},
    # DCalhas/eeg_to_fmri process_utils.train_synthesis: latent_dimension (7, 7, 7) = 343 units,
    # n_channels = 4 convolution filters (lr 2.98e-3 is the registered default);
    # attention_dim unverified (the attention's key width is not a named hyper-parameter there)
    "topo-attention": {"latent": 343, "attention_dim": 64, "filters": 4},
    "rnn-seq2seq": {"hidden": 128, "layers": 2},  # unverified (the poster gives no sizes)
}
LEAKY_REGIMES = ("shuffled",)
LEAKY_BANNER = ("LEAKY SPLIT: {regime} folds put near-copies of test samples into training; "
                "its scores are inflated and are shown only beside the leak-free result "
                "({leak_free}).")


def apply_protocol(config: Any, given: set[str] = frozenset()) -> None:
    """Fill ``config.group`` and ``config.eeg`` with ``config.group.protocol``'s group and
    participant settings, keeping those the user set (named in ``given``, or different from the
    default)."""
    gr = config.group
    if not gr.protocol:
        return
    if gr.protocol not in PROTOCOLS:
        raise UsageError(f"group.protocol must be one of {', '.join(PROTOCOLS)}; "
                         f"got {gr.protocol!r}")
    for section, part in ((gr, "group"), (config.eeg, "participant")):
        defaults = {f.name: (f.default_factory() if callable(f.default_factory)  # type: ignore[misc]
                             else f.default) for f in fields(type(section))}
        for name, value in PROTOCOLS[gr.protocol][part].items():
            if name not in given and getattr(section, name) == defaults[name]:
                setattr(section, name, value)


def validate_evaluation(gr: Any, level: str = "group") -> None:
    """Check the evaluation options of a ``GroupConfig``; exit 64 (UsageError) when a leaky split
    is asked for without ``--allow-leaky-split`` at the group level (the participant level of a
    protocol that asks for one only preprocesses)."""
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
    if gr.cv in LEAKY_REGIMES and not gr.allow_leaky_split and level == "group":
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
