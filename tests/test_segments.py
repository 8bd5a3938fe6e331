"""The poster's segment models (``--reconstruct segments``): one fine-tuned model per temporal
segment of a participant's runs, never trained on BOLD windows of the segment it predicts."""

from __future__ import annotations

import numpy as np
import pytest

import _torch_threads  # noqa: F401  (one thread)
from fmri2eeg_sim import DRIVEN_CELLS, simulate

from bids_eeg2fmri.data.windows import SequenceSpec, index_samples
from bids_eeg2fmri.errors import UsageError
from bids_eeg2fmri.training import TrainConfig, fit
from bids_eeg2fmri.training.finetune import windows_overlap
from bids_eeg2fmri.training.segments import (compare_segments, reconstruct_segments,
                                             segment_rows)
from bids_eeg2fmri.training.synth import reconstruct

WINDOW = SequenceSpec(window=12, horizon=3)
CFG = TrainConfig(epochs=5, progress=False)


def test_segments_tile_the_runs_and_train_away_from_them():
    runs, spec, _ = simulate(n_subjects=1, n_volumes=240, seed=3)
    samples = index_samples(runs, WINDOW)
    rows = np.arange(len(samples))
    parts = segment_rows(samples, rows, WINDOW, spec.tr, 4)
    segs = [seg for _, seg in parts]
    assert sorted(np.concatenate(segs).tolist()) == rows.tolist()  # a partition, in time order
    assert all(samples.volume[a].max() < samples.volume[b].min() for a, b in zip(segs, segs[1:]))
    for train, seg in parts:
        assert len(train) > 20 and not set(train) & set(seg)
        assert not windows_overlap(samples, train, seg, WINDOW)
        gap = np.abs(samples.volume[train].to_numpy()[:, None] - samples.volume[seg].to_numpy())
        assert gap.min() >= WINDOW.min_buffer(spec.tr)
    with pytest.raises(UsageError, match="too short"):
        segment_rows(samples, rows[:40], WINDOW, spec.tr, 4)
    with pytest.raises(UsageError, match="at least 2"):
        segment_rows(samples, rows, WINDOW, spec.tr, 1)


def test_segment_models_learn_the_held_out_participant():
    """Subjects differ in their haemodynamic delay: per-segment models fitted to the participant
    predict its EEG better than the base model, on the same samples and units."""
    runs, spec, info = simulate(n_subjects=4, n_volumes=300, seed=0)
    samples = index_samples(runs, WINDOW)
    gains = []
    for subject in ("03", "04"):
        test = np.flatnonzero(samples.subject.to_numpy() == subject)
        base = fit(runs, spec, "ridge", direction="fmri2eeg", window=WINDOW, samples=samples,
                   rows=np.setdiff1d(np.arange(len(samples)), test))
        evs = compare_segments(base, runs, samples, test, CFG, 3, bands=info["bands"],
                               groups=info["groups"])
        assert len(evs["sliding"].samples) == len(evs["segments"].samples) == len(test)
        gains += [evs["segments"].metrics[f"r_{c}"] - evs["sliding"].metrics[f"r_{c}"]
                  for c in DRIVEN_CELLS]
    gain = np.mean(gains)
    assert gain > 0.02, gain


def test_whole_run_reconstruction_takes_each_segment_from_its_model():
    runs, spec, _ = simulate(n_subjects=2, n_volumes=200, seed=1)
    base = fit(runs[:1], spec, "ridge", direction="fmri2eeg", window=WINDOW)
    run = runs[1]
    out = reconstruct_segments(base, run, CFG, 3)
    sliding = reconstruct(base, run)
    assert out.shape == sliding.shape
    assert np.array_equal(np.isnan(out).all(axis=(1, 2)), ~run.retained)
    assert not np.allclose(out[run.retained], sliding[run.retained])
