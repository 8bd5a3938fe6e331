"""Chunked resampling and the streaming NIfTI writer equal the in-memory paths; atomic writes.

Also: the head-motion node's thread count.
"""

from __future__ import annotations

import gzip

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from bids_eeg2fmri.bids.niftiio import NiftiStreamWriter, check_nifti
from bids_eeg2fmri.fmri import motion, resample
from bids_eeg2fmri.fmri.io import series_header, write_masked_series, write_masked_series_async


@pytest.fixture(scope="module")
def case():
    rng = np.random.default_rng(3)
    data = ndimage.gaussian_filter(rng.normal(0, 1, (18, 20, 10, 11)), (1, 1, 1, 0))
    data = (100 * data + 500).astype(np.float32)
    bold_aff = np.diag([2.0, 2.0, 3.0, 1.0])
    mask = np.ones((12, 13, 12), bool)
    mask[:2] = False
    out_aff = np.diag([3.0, 3.0, 3.0, 1.0])
    out_aff[:3, 3] = [1.0, 2.0, -1.0]  # part of the grid lies outside the acquired slab
    params = np.column_stack([rng.normal(0, 1.5, (11, 3)), rng.normal(0, 0.03, (11, 3))])
    hmc = motion.params_to_matrices(params, motion.grid_center(data.shape, bold_aff))
    return data, bold_aff, hmc, mask, out_aff


def _reference(data, bold_aff, hmc, mask, out_aff):
    """Every volume interpolated at every point at once (the path before chunking)."""
    mats, src = resample.sampling_geometry(bold_aff, hmc, data.shape[-1], None, None, mask, out_aff)
    src_h = np.column_stack([src, np.ones(len(src))]).T
    out = np.empty((len(src), data.shape[-1]), np.float32)
    covered = np.ones(len(src), bool)
    shape = np.array(data.shape[:3])
    for i in range(data.shape[-1]):
        vox = (mats[i] @ src_h)[:3]
        inside = ((vox > -0.5) & (vox < shape[:, None] - 0.5)).all(0)
        covered &= ((vox >= 0) & (vox <= shape[:, None] - 1)).all(0)
        coeffs = ndimage.spline_filter(data[..., i].astype(np.float64), order=3, mode="mirror")
        vals = ndimage.map_coordinates(coeffs, vox, order=3, prefilter=False, mode="mirror")
        out[:, i] = np.where(inside, vals, 0.0)
    return out, covered


@pytest.mark.parametrize("source", ["array", "file"])
def test_chunked_resampling_equals_one_shot(case, source, tmp_path, monkeypatch):
    data, bold_aff, hmc, mask, out_aff = case
    ref, ref_cov = _reference(data, bold_aff, hmc, mask, out_aff)
    assert 0 < ref_cov.sum() < ref_cov.size and (ref == 0).any()  # the case exercises the edges
    if source == "file":
        path = tmp_path / "stc.nii"
        nib.save(nib.Nifti1Image(data, bold_aff), path)
        src = str(path)
    else:
        src = data
    monkeypatch.setattr(resample, "CHUNK_VOLUMES", 3)  # 11 volumes: chunks of 3, 3, 3, 2
    got, cov = resample._resample_scipy(src, *resample.sampling_geometry(
        bold_aff, hmc, data.shape[-1], None, None, mask, out_aff), 3, np.float32, 2)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-4)
    np.testing.assert_array_equal(cov, ref_cov)
    public = resample.resample_series(src, bold_aff, hmc, None, None, mask, out_aff,
                                      engine="scipy", n_procs=1)
    np.testing.assert_allclose(public, ref, rtol=0, atol=1e-4)


def test_chunks_arrive_in_order_and_cover_the_run(case):
    data, bold_aff, hmc, mask, out_aff = case
    mats, src = resample.sampling_geometry(bold_aff, hmc, data.shape[-1], None, None, mask, out_aff)
    spans = [(a, b, v.shape) for a, b, v, _ in
             resample.iter_scipy_chunks(data, mats, src, n_procs=2, chunk=4)]
    assert [(a, b) for a, b, _ in spans] == [(0, 4), (4, 8), (8, 11)]
    assert all(shape == (len(src), b - a) for a, b, shape in spans)


def _header(shape, affine):
    return series_header(shape, affine, 2.0)


def test_stream_writer_equals_in_memory_save(tmp_path):
    rng = np.random.default_rng(0)
    vol = rng.normal(size=(6, 7, 5, 9)).astype(np.float32)
    aff = np.diag([2.0, 2.0, 2.0, 1.0])
    dest = tmp_path / "bold.nii.gz"
    with NiftiStreamWriter(dest, _header(vol.shape, aff)) as w:
        w.write(vol[..., :4])          # a block
        for i in range(4, 9):
            w.write(vol[..., i])       # single volumes
    info = check_nifti(dest)
    assert info.shape == vol.shape
    img = nib.load(dest)
    np.testing.assert_array_equal(np.asarray(img.dataobj), vol)
    np.testing.assert_allclose(img.affine, aff)
    assert img.header.get_zooms()[3] == 2.0
    assert list(tmp_path.iterdir()) == [dest]
    # Same bytes as the in-memory path's data section, and byte-identical reruns.
    raw = gzip.decompress(dest.read_bytes())
    assert raw[352:] == vol.tobytes(order="F")
    again = tmp_path / "again.nii.gz"
    with NiftiStreamWriter(again, _header(vol.shape, aff)) as w:
        w.write(vol)
    assert again.read_bytes() == dest.read_bytes()


def test_stream_writer_is_atomic_on_error(tmp_path):
    aff = np.eye(4)
    dest = tmp_path / "bold.nii.gz"
    dest.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="boom"):
        with NiftiStreamWriter(dest, _header((4, 4, 4, 3), aff)) as w:
            w.write(np.ones((4, 4, 4)))
            raise RuntimeError("boom")
    assert dest.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bold.nii.gz"]


def test_stream_writer_refuses_missing_or_extra_volumes(tmp_path):
    aff = np.eye(4)
    dest = tmp_path / "bold.nii"
    with pytest.raises(ValueError, match="2 of the 3 volumes"):
        with NiftiStreamWriter(dest, _header((4, 4, 4, 3), aff)) as w:
            w.write(np.ones((4, 4, 4, 2)))
    assert not dest.exists() and list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="more than the 3 volumes"):
        with NiftiStreamWriter(dest, _header((4, 4, 4, 3), aff)) as w:
            w.write(np.ones((4, 4, 4, 4)))
    assert list(tmp_path.iterdir()) == []


def test_async_writer_error_reaches_the_caller(tmp_path, monkeypatch):
    dest = tmp_path / "bold.nii.gz"

    def fail(self, volumes):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(NiftiStreamWriter, "write", fail)
    future = write_masked_series_async(dest, np.ones((10, 3), np.float32),
                                       np.ones((2, 5, 1), bool), np.eye(4), 2.0)
    with pytest.raises(OSError, match="No space left"):
        future.result()
    assert list(tmp_path.iterdir()) == []


def test_masked_writers_equal_unmasked_volume(tmp_path):
    rng = np.random.default_rng(1)
    mask = rng.random((5, 6, 4)) > 0.4
    values = rng.normal(size=(int(mask.sum()), 7)).astype(np.float32)
    aff = np.diag([3.0, 3.0, 3.0, 1.0])
    expected = resample.unmask(values, mask)
    write_masked_series(tmp_path / "a.nii.gz", values, mask, aff, 1.5)
    write_masked_series_async(tmp_path / "b.nii.gz", values, mask, aff, 1.5).result()
    for name in ("a.nii.gz", "b.nii.gz"):
        np.testing.assert_array_equal(np.asarray(nib.load(tmp_path / name).dataobj), expected)
    assert (tmp_path / "a.nii.gz").read_bytes() == (tmp_path / "b.nii.gz").read_bytes()


@pytest.mark.parametrize("hmc, omp, expected", [("torch", 0, 1), ("torch", 3, 3), ("ants", 0, 4)])
def test_head_motion_node_threads(tmp_path, hmc, omp, expected):
    from bids_eeg2fmri.config import Config
    from bids_eeg2fmri.workflows.fmri import init_fmri_preproc_wf

    config = Config.from_sources({"output_dir": str(tmp_path), "hmc": hmc, "nprocs": 4,
                                  "omp_nthreads": omp})
    node = init_fmri_preproc_wf(config=config).get_node("hmc")
    assert node.inputs.n_procs == expected and node.n_procs == expected
