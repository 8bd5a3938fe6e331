"""The poster's segment models: a participant's spectrogram reconstructed by one model per
temporal segment, beside the sliding-window stitching of a single model
(:func:`~bids_eeg2fmri.training.synth.reconstruct`).

Every run of the participant is cut into ``n_segments`` consecutive segments of its samples
(named by their first predicted TR). The model of segment ``s`` is the base model (trained on other
participants) fine-tuned on the participant's own samples that lie at least
:meth:`~bids_eeg2fmri.data.windows.SequenceSpec.min_buffer` volumes (window + HRF reach) away from
the segment — so no BOLD window it trained on overlaps one it predicts — and it predicts that
segment only. The segments' predictions are concatenated; no overlap between models is averaged.

:func:`compare_segments` scores the base model and the segment models on the same samples and in
the same units (each segment's EEG statistics from its own training samples, the participant's
calibration data), so the comparison isolates what the per-segment models learn.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..data.windows import RunArrays, SequenceSpec
from ..errors import UsageError
from .core import Evaluation, evaluate, fit
from .model import FittedModel
from .options import TrainConfig
from .synth import reconstruct

STAGES = ("sliding", "segments")


def segment_rows(samples: pd.DataFrame, rows: np.ndarray, window: SequenceSpec, tr: float,
                 n_segments: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per segment, ``(training rows, segment rows)`` of one participant's ``rows``.

    Raises
    ------
    UsageError
        For fewer than 2 segments, or runs too short to leave training samples outside a segment.
    """
    if n_segments < 2:
        raise UsageError(f"segment models need at least 2 segments, got {n_segments}")
    rows = np.asarray(rows, dtype=int)
    run = samples["run_index"].to_numpy()[rows]
    vol = samples["volume"].to_numpy()[rows]
    seg = np.empty(len(rows), dtype=int)
    for r in np.unique(run):
        sel = run == r
        order = np.argsort(vol[sel], kind="stable")
        seg_of = np.empty(sel.sum(), dtype=int)
        seg_of[order] = np.arange(sel.sum()) * n_segments // sel.sum()
        seg[sel] = seg_of
    buffer = window.min_buffer(tr)
    out = []
    for s in range(n_segments):
        inside = seg == s
        far = np.ones(len(rows), dtype=bool)
        for r in np.unique(run[inside]):
            lo, hi = vol[inside & (run == r)].min(), vol[inside & (run == r)].max()
            same = run == r
            far[same] &= (vol[same] <= lo - buffer) | (vol[same] >= hi + buffer)
        if not far.any():
            raise UsageError(f"runs of subject {samples['subject'].iloc[rows[0]]} are too short "
                             f"for {n_segments} segments with a {buffer}-volume buffer")
        out.append((rows[far], rows[inside]))
    return out


def segment_models(base: FittedModel, runs: Sequence[RunArrays], samples: pd.DataFrame,
                   rows: np.ndarray, config: TrainConfig, n_segments: int
                   ) -> list[tuple[np.ndarray, np.ndarray, FittedModel]]:
    """``(training rows, segment rows, model)`` per segment of the participant's ``rows``."""
    out = []
    for train_rows, seg in segment_rows(samples, rows, base.window, base.data_spec.tr, n_segments):
        model = fit(runs, base.data_spec, base.name, direction=base.direction, window=base.window,
                    samples=samples, rows=train_rows, val_rows=np.empty(0, dtype=int),
                    train_config=config, init=base)
        out.append((train_rows, seg, model))
    return out


def _joined(parts: list[Evaluation], fitted: FittedModel, runs: Sequence[RunArrays],
            **score_options: Any) -> Evaluation:
    """One evaluation of the concatenated segments' predictions."""
    cat = lambda name: np.concatenate([getattr(p, name) for p in parts])  # noqa: E731
    truth = None if any(p.truth is None for p in parts) else cat("truth")
    samples = pd.concat([p.samples for p in parts], ignore_index=True)
    baselines = {k: np.concatenate([p.baselines[k] for p in parts]) for k in parts[0].baselines}
    pred, true = cat("pred"), cat("true")
    # The dB-domain scores need each sample's EEG level; the held-out participant's comes from
    # all its rows here (each segment was z-scored with its own calibration rows, whose levels
    # differ from these only by the segment's share of the run).
    levels = fitted.calibrated(runs, samples, None)
    metrics, per = fitted.direction.score(pred, true, truth, baselines, levels, samples,
                                          **score_options)
    return Evaluation(metrics, pred, true, truth, samples, baselines, per)


def compare_segments(base: FittedModel, runs: Sequence[RunArrays], samples: pd.DataFrame,
                     rows: np.ndarray, config: TrainConfig, n_segments: int, *,
                     device: str = "auto", **score_options: Any) -> dict[str, Evaluation]:
    """The base model (``sliding``) and the segment models (``segments``) on every sample of the
    participant's ``rows``, each segment in the units of its own calibration rows."""
    stages: dict[str, list[Evaluation]] = {s: [] for s in STAGES}
    for train_rows, seg, model in segment_models(base, runs, samples, rows, config, n_segments):
        calibrated = base.calibrated(runs, samples, train_rows)
        for stage, m in zip(STAGES, (calibrated, model)):
            stages[stage].append(evaluate(m, runs, samples=samples, rows=seg, device=device,
                                          **score_options))
    return {stage: _joined(parts, base, runs, **score_options) for stage, parts in stages.items()}


def reconstruct_segments(base: FittedModel, run: RunArrays, config: TrainConfig,
                         n_segments: int, *, device: str = "auto") -> np.ndarray:
    """The whole-run spectrogram of :func:`~.synth.reconstruct`, each segment of the run's TRs
    from its own segment model (the run needs its EEG: the models are fine-tuned on it).

    Returns
    -------
    ndarray
        ``(n_volumes, n_channels, n_freqs)`` in dB; NaN where no segment model predicts.
    """
    from ..data.windows import index_samples

    samples = index_samples([run], base.window)
    models = segment_models(base, [run], samples, np.arange(len(samples)), config, n_segments)
    vols = samples["volume"].to_numpy()
    out = None
    for i, (_, seg, model) in enumerate(models):
        full = reconstruct(model, run, device=device)
        out = np.full_like(full, np.nan) if out is None else out
        # The segment's TRs: from its first predicted TR up to the next segment's first.
        lo = vols[seg].min() if i else 0
        hi = vols[models[i + 1][1]].min() if i + 1 < len(models) else run.n_volumes
        out[lo:hi] = full[lo:hi]
    return out
