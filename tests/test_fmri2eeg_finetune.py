"""The seed's protocol: base model by 5-fold CV over subjects, then per-subject fine-tuning."""

from __future__ import annotations

import numpy as np
import pytest

import _torch_threads  # noqa: F401  (one thread)
from fmri2eeg_sim import DRIVEN_CELLS, simulate

from bids_eeg2fmri.data.windows import SequenceSpec, index_samples
from bids_eeg2fmri.errors import UsageError
from bids_eeg2fmri.training import TrainConfig
from bids_eeg2fmri.training.finetune import finetune_protocol, finetune_split, windows_overlap

WINDOW = SequenceSpec(window=20, horizon=5)


def test_finetune_and_test_blocks_share_no_window():
    runs, spec, _ = simulate(n_subjects=2, n_volumes=200, seed=3)
    samples = index_samples(runs, WINDOW)
    rows = np.flatnonzero(samples["subject"].to_numpy() == "01")
    ft, te = finetune_split(samples, rows, WINDOW, spec.tr, fraction=0.5)
    assert len(ft) > 30 and len(te) > 30 and not set(ft) & set(te)
    assert not windows_overlap(samples, ft, te, WINDOW)
    vf, vt = samples.iloc[ft]["volume"], samples.iloc[te]["volume"]
    assert vt.min() - vf.max() >= WINDOW.min_buffer(spec.tr)
    # The check can fail: neighbouring samples do overlap.
    assert windows_overlap(samples, rows[:1], rows[5:6], WINDOW)
    with pytest.raises(UsageError, match="overlap"):
        finetune_split(samples, rows, WINDOW, spec.tr, buffer=10)
    with pytest.raises(UsageError, match="too short"):
        finetune_split(samples, rows[:20], WINDOW, spec.tr)


def test_finetuning_improves_held_out_subjects(tmp_path):
    runs, spec, info = simulate(n_subjects=5, n_volumes=300, seed=0)
    res = finetune_protocol(runs, spec, ["rnn-seq2seq"], window=WINDOW, k=5,
                            train_config=TrainConfig(epochs=15, lr=5e-3, weight_decay=0.5,
                                                     progress=False),
                            bands=info["bands"], groups=info["groups"], out_dir=tmp_path)
    assert sorted(res.splits) == ["01", "02", "03", "04", "05"]
    for ft, te in res.splits.values():
        assert not windows_overlap(res.samples, ft, te, WINDOW)
    gains = np.mean([res.side_by_side(f"r_{c}")["gain"].to_numpy() for c in DRIVEN_CELLS], axis=0)
    assert gains.mean() > 0.02, gains
    assert (tmp_path / "finetune_metrics.tsv").exists()
    both = res.table.groupby("stage")["n_test"].sum()
    assert both["base"] == both["finetuned"]  # same test blocks, side by side
