"""Derivative names, dataset description, atomic writes, validator and pybids on the output."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pytest
from bids.layout import BIDSLayout

from bids_eeg2fmri.bids.derivatives import (TMP_PREFIX, atomic_path, atomic_write_text, build_path,
                                            parse_entities, remove_stale_temporaries, sidecar_path,
                                            write_sidecar,
                                            write_dataset_description, write_json)
from bids_eeg2fmri.bids.validate import run_validator

SRC = "sub-01_ses-1_task-rest_run-1_bold.nii.gz"


@pytest.mark.parametrize("kwargs, expected", [
    (dict(suffix="boldref", extension=".nii.gz", space="boldref"),
     "sub-01/ses-1/func/sub-01_ses-1_task-rest_run-1_space-boldref_boldref.nii.gz"),
    (dict(suffix="timeseries", extension=".tsv", desc="confounds"),
     "sub-01/ses-1/func/sub-01_ses-1_task-rest_run-1_desc-confounds_timeseries.tsv"),
    (dict(suffix="xfm", extension=".h5", from_="boldref", to="MNI152NLin2009aSym", mode="image"),
     "sub-01/ses-1/func/sub-01_ses-1_task-rest_run-1_from-boldref_to-MNI152NLin2009aSym_mode-image_xfm.h5"),
    (dict(suffix="bold", extension=".nii.gz", space="MNI152NLin2009aSym", res="2", desc="preproc"),
     "sub-01/ses-1/func/sub-01_ses-1_task-rest_run-1_space-MNI152NLin2009aSym_res-2_desc-preproc_bold.nii.gz"),
    (dict(suffix="eeg", extension=".fif", desc="preproc", datatype="eeg"),
     "sub-01/ses-1/eeg/sub-01_ses-1_task-rest_run-1_desc-preproc_eeg.fif"),
    (dict(suffix="spectrogram", extension=".h5", desc="stft", datatype="eeg"),
     "sub-01/ses-1/eeg/sub-01_ses-1_task-rest_run-1_desc-stft_spectrogram.h5"),
])
def test_build_path_follows_bids_entity_order(tmp_path, kwargs, expected):
    assert build_path(tmp_path, SRC, **kwargs) == tmp_path / expected


def test_build_path_accepts_pybids_entities_and_refuses_bad_labels(tmp_path):
    ents = {"subject": "02", "task": "rest", "run": 3, "datatype": "func", "suffix": "bold"}
    path = build_path(tmp_path, ents, suffix="mask", extension=".nii.gz", space="MNI152NLin2009aSym",
                      desc="brain")
    assert path.name == "sub-02_task-rest_run-3_space-MNI152NLin2009aSym_desc-brain_mask.nii.gz"
    with pytest.raises(ValueError, match="alphanumeric"):
        build_path(tmp_path, SRC, suffix="bold", extension=".nii.gz", desc="pre_proc")
    with pytest.raises(ValueError, match="unknown BIDS entity"):
        build_path(tmp_path, SRC, suffix="bold", extension=".nii.gz", colour="red")
    with pytest.raises(ValueError, match="subject"):
        build_path(tmp_path, {"task": "rest"}, suffix="bold", extension=".nii.gz", datatype="func")


def test_parse_entities_inverts_build_path(tmp_path):
    path = build_path(tmp_path, SRC, suffix="bold", extension=".nii.gz", space="MNI152NLin2009aSym",
                      res="2", desc="preproc")
    ents = parse_entities(path)
    assert ents == {"sub": "01", "ses": "1", "task": "rest", "run": "1",
                    "space": "MNI152NLin2009aSym", "res": "2", "desc": "preproc", "suffix": "bold",
                    "extension": ".nii.gz"}
    assert sidecar_path(path).name == path.name.replace(".nii.gz", ".json")


def _write_design_outputs(out: Path, bids_dir: Path) -> list[Path]:
    """Every derivative the design names, with small but real contents."""
    write_dataset_description(out, [bids_dir])
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    written = []

    def nifti(path, shape, dtype=np.float32):
        with atomic_path(path) as tmp:
            img = nib.Nifti1Image(np.ones(shape, dtype=dtype), affine)
            if len(shape) == 4:
                img.header.set_xyzt_units("mm", "sec")
                img.header["pixdim"][4] = 2.0
            nib.save(img, tmp)
        written.append(path)

    func = dict(space="MNI152NLin2009aSym", res="2")
    nifti(build_path(out, SRC, suffix="boldref", extension=".nii.gz", space="boldref"), (4, 4, 4))
    p = build_path(out, SRC, suffix="bold", extension=".nii.gz", desc="preproc", **func)
    nifti(p, (4, 4, 4, 5))
    write_sidecar(p, {"RepetitionTime": 2.0, "SkullStripped": True,
                                 "SliceTimingCorrected": True, "StartTime": 1.0,
                                 "Sources": [f"bids:raw:sub-01/ses-1/func/{SRC}"]})
    assert json.loads(sidecar_path(p).read_text())["Resolution"].startswith("2 mm")
    mask = build_path(out, SRC, suffix="mask", extension=".nii.gz", desc="brain", **func)
    nifti(mask, (4, 4, 4), np.uint8)
    write_sidecar(mask, {"Type": "Brain"})
    conf = build_path(out, SRC, suffix="timeseries", extension=".tsv", desc="confounds")
    atomic_write_text(conf, "trans_x\tframewise_displacement\n0.0\tn/a\n0.1\t0.1\n")
    write_json(sidecar_path(conf), {"trans_x": {"Description": "x translation", "Units": "mm"}})
    xfm = build_path(out, SRC, suffix="xfm", extension=".h5", from_="boldref",
                     to="MNI152NLin2009aSym", mode="image")
    with atomic_path(xfm) as tmp, h5py.File(tmp, "w") as fh:
        fh["x"] = np.zeros(3)
    spec = build_path(out, SRC, suffix="spectrogram", extension=".h5", desc="stft", datatype="eeg")
    with atomic_path(spec) as tmp, h5py.File(tmp, "w") as fh:
        fh["spectrogram"] = np.zeros((5, 2, 3, 4), dtype=np.float32)
    write_json(sidecar_path(spec), {"Units": "dB"})
    bp = build_path(out, SRC, suffix="timeseries", extension=".tsv", desc="bandpower", datatype="eeg")
    atomic_write_text(bp, "Cz_alpha\n1.0\n2.0\n")
    write_json(sidecar_path(bp), {"Cz_alpha": {"Description": "alpha power", "Units": "V^2"}})
    written += [conf, xfm, spec, bp]
    return written


def test_output_passes_validator_and_pybids_indexes_it(tmp_path):
    bids_dir = tmp_path / "raw"
    bids_dir.mkdir()
    out = tmp_path / "out"
    written = _write_design_outputs(out, bids_dir)
    result = run_validator(out)
    assert result.ok, result.summary()
    desc = json.loads((out / "dataset_description.json").read_text())
    assert desc["DatasetType"] == "derivative"
    assert desc["GeneratedBy"][0]["Name"] == "bids_eeg2fmri"
    assert desc["SourceDatasets"][0]["URL"] == bids_dir.resolve().as_uri()
    assert desc["DatasetLinks"] == {"raw": bids_dir.resolve().as_uri()}
    for layout in (BIDSLayout(out, validate=False, config=["bids", "derivatives"]),
                   BIDSLayout(out, derivatives=True, validate=False)):
        indexed = {Path(f.path) for f in layout.get(return_type="object")}
        for path in written:
            assert path in indexed, path
    layout = BIDSLayout(out, validate=False, config=["bids", "derivatives"])
    bold = layout.get(subject="01", session="1", task="rest", run=1, space="MNI152NLin2009aSym",
                      desc="preproc", suffix="bold", extension=".nii.gz")
    assert len(bold) == 1
    assert layout.get_metadata(bold[0].path)["RepetitionTime"] == 2.0
    assert bold[0].get_entities()["res"] == "2"


def test_container_is_recorded(tmp_path, monkeypatch):
    monkeypatch.setenv("BIDS_EEG2FMRI_CONTAINER", "docker")
    monkeypatch.setenv("BIDS_EEG2FMRI_IMAGE", "bids-eeg2fmri:test")
    write_dataset_description(tmp_path, [tmp_path])
    gen = json.loads((tmp_path / "dataset_description.json").read_text())["GeneratedBy"][0]
    assert gen["Container"] == {"Type": "docker", "Tag": "bids-eeg2fmri:test"}


def test_failed_writer_leaves_nothing_and_keeps_old_file(tmp_path):
    dest = tmp_path / "sub-01" / "func" / "x.tsv"
    atomic_write_text(dest, "old\n")
    with pytest.raises(RuntimeError):
        with atomic_path(dest) as tmp:
            tmp.write_text("half")
            raise RuntimeError("writer crashed")
    assert dest.read_text() == "old\n"
    assert list(dest.parent.iterdir()) == [dest]


def test_killed_writer_leaves_no_partial_file(tmp_path):
    dest = tmp_path / "sub-01" / "func" / "big.nii.gz"
    script = textwrap.dedent(f"""
        import sys, time
        from bids_eeg2fmri.bids.derivatives import atomic_path
        with atomic_path({str(dest)!r}) as tmp:
            with open(tmp, "wb") as fh:
                for _ in range(10000):
                    fh.write(b"x" * 65536)
                    fh.flush()
                    print("wrote", flush=True)
                    time.sleep(0.01)
        """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    for _ in range(5):  # wait until the writer is well into the file
        assert proc.stdout.readline().startswith("wrote")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert not dest.exists()
    leftovers = [p for p in dest.parent.iterdir()]
    assert leftovers and all(p.name.startswith(TMP_PREFIX) for p in leftovers)
    assert remove_stale_temporaries(tmp_path) == leftovers
    assert list(dest.parent.iterdir()) == []
    time.sleep(0)  # nothing else to wait for: the next run starts from a clean folder


def test_save_derivative_node_names_and_sidecars(tmp_path):
    from bids_eeg2fmri.interfaces.derivatives import SaveDerivative

    work = tmp_path / "work"
    work.mkdir()
    src = work / "mask.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((3, 3, 3), np.uint8), np.eye(4)), src)
    node = SaveDerivative(in_file=str(src), out_dir=str(tmp_path / "out"), source_file=SRC,
                          suffix="mask", entities={"space": "MNI152NLin2009aSym", "res": "2",
                                                   "desc": "brain"},
                          metadata={"Type": "Brain"})
    out = Path(node.run().outputs.out_file)
    assert out == build_path(tmp_path / "out", SRC, suffix="mask", extension=".nii.gz",
                             space="MNI152NLin2009aSym", res="2", desc="brain")
    assert out.read_bytes() == src.read_bytes()
    assert json.loads(sidecar_path(out).read_text()) == {"Type": "Brain",
                                                        "Resolution": "2 mm isotropic voxels"}


def test_sources_resolve_through_dataset_links(tmp_path):
    from urllib.parse import urlparse
    from urllib.request import url2pathname

    from bids_eeg2fmri.bids.derivatives import dataset_links, source_uri

    raw, eegd = tmp_path / "raw", tmp_path / "eegprep"
    files = {"raw": raw / "sub-01" / "ses-1" / "func" / f"{SRC}_bold.nii.gz",
             "eeg": eegd / "derivatives" / "sub-01" / "eeg" / "sub-01_task-rest_eeg.vhdr"}
    for f in files.values():
        f.parent.mkdir(parents=True)
        f.write_text("x")
    out = tmp_path / "out"
    write_dataset_description(out, [raw], links=dataset_links(raw, eeg=eegd))
    links = json.loads((out / "dataset_description.json").read_text())["DatasetLinks"]
    for name, path in files.items():
        uri = source_uri(path, name)
        assert not Path(uri.split(":", 2)[2]).is_absolute()
        scheme, ds, rel = uri.split(":", 2)
        assert scheme == "bids" and ds == name
        root = Path(url2pathname(urlparse(links[ds]).path))
        # The link need not point at the folder that holds sub-XX directly (a derivatives tree
        # may nest it); the file is found under it.
        assert any(p.as_posix().endswith(rel) for p in root.rglob("*")), uri
    assert (raw / source_uri(files["raw"]).split(":", 2)[2]).is_file()
    assert source_uri(files["raw"]) == f"bids:raw:sub-01/ses-1/func/{SRC}_bold.nii.gz"
