"""The spectrogram HDF5 is netCDF-4: xarray opens it with named coordinates."""

from __future__ import annotations

import numpy as np
import pytest

from bids_eeg2fmri.data.readers import read_spectrogram
from bids_eeg2fmri.eeg.pipeline import SpectralResult, write_spectrogram_h5

xr = pytest.importorskip("xarray")
pytest.importorskip("h5netcdf")


def _result(n_vol=6, n_ch=3, n_f=5, n_fr=4):
    rng = np.random.default_rng(0)
    spec = rng.random((n_vol, n_ch, n_f, n_fr)).astype(np.float32)
    vols = np.arange(2, 2 + n_vol)
    onsets = 0.5 + 2.0 * np.arange(n_vol)
    return SpectralResult(spec, np.linspace(1, 40, n_f), np.linspace(0.25, 1.75, n_fr),
                          [f"E{k}" for k in range(n_ch)], vols, onsets, [], np.zeros((n_vol, 0)),
                          vols, onsets, {})


def test_xarray_reads_named_coordinates(tmp_path):
    res = _result()
    path = tmp_path / "sub-01_task-rest_desc-stft_spectrogram.h5"
    write_spectrogram_h5(path, res, "log")
    with xr.open_dataset(path, engine="h5netcdf") as ds:
        da = ds["spectrogram"]
        assert da.dims == ("volume", "channel", "frequency", "frame")
        np.testing.assert_array_equal(ds["volume"].values, res.spec_volumes)
        assert list(ds["channel"].values) == res.channels
        np.testing.assert_allclose(ds["frequency"].values, res.frequencies)
        np.testing.assert_allclose(ds["frame"].values, res.frame_times)
        np.testing.assert_allclose(ds["volume_onsets"].values, res.spec_onsets)
        assert ds["volume_onsets"].dims == ("volume",)
        np.testing.assert_array_equal(da.sel(channel="E1", volume=4).values,
                                      res.spectrogram[2, 1])
        assert not any(d.startswith("phony_dim") for d in ds.dims)


def test_our_reader_still_reads_it(tmp_path):
    res = _result()
    path = tmp_path / "sub-01_task-rest_desc-stft_spectrogram.h5"
    write_spectrogram_h5(path, res, "log")
    spec, valid, *_ = read_spectrogram(path, 10)
    assert valid.sum() == 6 and valid[2:8].all()
