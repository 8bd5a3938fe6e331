"""A small EEG→fMRI model folder written the way the group level writes one, for tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bids_eeg2fmri.data.windows import WindowSpec
from bids_eeg2fmri.group import card as C
from bids_eeg2fmri.training import TrainConfig, fit
from eeg2fmri_sim import simulate


def make_model_folder(out: Path, **card: object) -> Path:
    """Fit a ridge model on simulated arrays and write weights, labels and card into ``out``."""
    runs, spec = simulate(n_subjects=2, n_volumes=60, target="voxels", seed=1)[:2]
    fitted = fit(runs, spec, "ridge", window=WindowSpec(window=4),
                 train_config=TrainConfig(epochs=1, seed=0))
    fitted.save(out / C.MODEL_FILE)
    C.write_model_folder(out, fitted, spec.mask.astype(np.int16), np.eye(4),
                         {"Format": C.CARD_FORMAT, "Name": "ridge", "Direction": "eeg2fmri", **card})
    return out
