"""Region time series for the fMRI→EEG input: GM parts of atlas regions + one non-GM part, PCA."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from bids_eeg2fmri.data.regions import NON_GM, RegionLabels, VoxelPCA, gm_region_labels, region_timeseries
from bids_eeg2fmri.errors import DataError
from bids_eeg2fmri.resources.atlases import resample_labels
from bids_eeg2fmri.resources.templates import load_mask, template_grid


@pytest.fixture(scope="module")
def grid_img():
    shape, affine = template_grid(6)
    return nib.Nifti1Image(np.zeros(shape, np.uint8), affine)


def test_gm_split_aal(grid_img):
    lab = gm_region_labels(grid_img, atlas="aal")
    assert lab.names[-1] == NON_GM and len(lab.names) > 50
    assert set(np.unique(lab.labels)) == set(range(len(lab.names) + 1))
    gm = np.asarray(resample_labels(load_mask("gm", 2), grid_img).dataobj) > 0
    # Every GM-region voxel lies in the GM mask; the non-GM part holds the brain outside them.
    assert gm[(lab.labels > 0) & (lab.labels < len(lab.names))].all()
    non_gm = lab.labels == len(lab.names)
    assert non_gm.sum() > 100 and not (gm & non_gm & (lab.labels < len(lab.names))).any()


def test_region_timeseries_means():
    labels = RegionLabels(np.array([[[1, 1], [2, 0]]]), ["a", NON_GM])
    data = np.arange(1 * 2 * 2 * 3, dtype=float).reshape(1, 2, 2, 3)
    ts = region_timeseries(data, labels)
    np.testing.assert_allclose(ts[:, 0], data[0, 0].mean(axis=0))
    np.testing.assert_allclose(ts[:, 1], data[0, 1, 0])
    with pytest.raises(DataError, match="does not fit"):
        region_timeseries(data[..., None], labels)


def test_voxel_pca_fits_training_only():
    rng = np.random.default_rng(0)
    common = rng.normal(size=(1, 40))
    runs = [rng.normal(size=(80, 1)) @ common + 0.1 * rng.normal(size=(80, 40)) for _ in range(3)]
    pca = VoxelPCA(3).fit(runs[:2])
    scores = pca.transform(runs[2])
    assert scores.shape == (80, 3) and pca.names() == ["pc1", "pc2", "pc3"]
    # The shared spatial pattern is the first component, also for the run it was not fitted on.
    assert abs(np.corrcoef(scores[:, 0], runs[2] @ common.ravel())[0, 1]) > 0.99
    with pytest.raises(DataError, match="voxels given"):
        pca.transform(runs[2][:, :5])
