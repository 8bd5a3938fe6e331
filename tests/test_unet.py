"""``unet`` (Bruno et al. 2025's comparator): a U-Net decoder that learns the simulated coupling."""

from __future__ import annotations

import _torch_threads  # noqa: F401
import numpy as np
import torch

from bids_eeg2fmri.data.windows import WindowSpec
from bids_eeg2fmri.models import registry
from bids_eeg2fmri.models.base import ModelShape
from bids_eeg2fmri.training import TrainConfig, cross_validate
from eeg2fmri_sim import simulate


def test_unet_skip_connections_carry_the_contracting_path():
    """Odd grid sizes are padded and cropped back; the decoder reads the encoder's levels."""
    mask = np.ones((5, 7, 3), bool)
    shape = ModelShape(window=2, n_channels=3, n_freqs=2, n_frames=1, n_targets=int(mask.sum()),
                       grid=mask)
    torch.manual_seed(0)
    model = registry.build("unet", shape).eval()
    x = torch.randn(2, 2, 3, 2, 1)
    assert model(x).shape == (2, 105)
    # Zeroing the first skip's features changes the output: the skips are wired in.
    with torch.no_grad():
        base = model(x)
        model.dec1[0].weight[:, 8:] = 0  # channels 8..15 of dec1's input are the skip from enc1
        assert not torch.allclose(base, model(x))


def test_unet_beats_the_baselines_on_simulated_voxels():
    runs, spec, _ = simulate(n_subjects=4, n_volumes=120, target="voxels", seed=0)
    res = cross_validate(runs, spec, ["unet"], regime="split", window=WindowSpec(window=8),
                         train_config=TrainConfig(epochs=20, patience=6))
    row = res.table.iloc[0]
    assert row.model_mse < row.train_mean_mse and row.model_mse < row.subject_mean_mse
