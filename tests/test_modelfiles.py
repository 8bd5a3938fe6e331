"""Model files are data: safetensors + JSON, checksums checked first, pickles never run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import _torch_threads  # noqa: F401
import numpy as np
import pytest
import torch

from bids_eeg2fmri import modelfiles as MF
from bids_eeg2fmri.errors import DataError, ExitCode
from bids_eeg2fmri.group import card as C
from bids_eeg2fmri.training import load_model
from bids_eeg2fmri.training.trainer import load_checkpoint
from eeg2fmri_sim import simulate
from modelfolder import make_model_folder


class Payload:
    """Unpickling this creates ``marker``: the side effect a loader must never cause."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _pickle_bomb(path: Path, marker: Path) -> None:
    torch.save({"model_state": {}, "x": Payload(marker)}, path)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """A model folder as the group level writes it: weights, labels and card with checksums."""
    return make_model_folder(tmp_path_factory.mktemp("model") / "ridge")


def _copy(folder: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "copy"
    shutil.copytree(folder, dest)
    return dest


def _set_checksum(folder: Path, name: str) -> None:
    """Re-pin ``name`` in the card: what an attacker who controls the whole folder can do."""
    card = json.loads((folder / C.CARD_FILE).read_text())
    card["Files"][name] = MF.sha256(folder / name)
    (folder / C.CARD_FILE).write_text(json.dumps(card))


def test_round_trip_predicts_the_same(folder):
    card = C.read_card(folder)
    assert set(card["Files"]) == {C.MODEL_FILE, C.LABELS_FILE}
    assert C.MODEL_FILE == "model.safetensors"
    loaded = load_model(folder / C.MODEL_FILE)
    again = MF.read_model_file(folder / C.MODEL_FILE, card["Files"][C.MODEL_FILE])
    for key, value in loaded.model.state_dict().items():
        assert torch.equal(value, again["model_state"][key])
    assert isinstance(again["eeg_norm"]["stats"], dict)
    runs, spec = simulate(n_subjects=1, n_volumes=40, target="voxels", seed=5)[:2]
    a = loaded.predict(runs, spec, device="cpu")
    b = load_model(folder / C.MODEL_FILE).predict(runs, spec, device="cpu")
    assert np.array_equal(a, b) and np.isfinite(a).all()


def test_pack_state_keeps_arrays_types_and_refuses_objects():
    state = {"a": np.arange(6, dtype=np.float64).reshape(2, 3), "t": torch.ones(2, dtype=torch.int64),
             "n": [np.float32(1.5), (1, "x"), None, float("inf")], "b": np.array([True, False])}
    meta, tensors = MF.pack_state(state)
    json.dumps(meta)
    back = MF.unpack_state(meta, tensors)
    assert back["a"].dtype == np.float64 and np.array_equal(back["a"], state["a"])
    assert torch.equal(back["t"], state["t"]) and back["n"] == [1.5, [1, "x"], None, float("inf")]
    assert back["b"].dtype == bool
    with pytest.raises(TypeError):
        MF.pack_state({"x": object()})
    with pytest.raises(TypeError):
        MF.pack_state({1: 2})


def test_changed_file_is_refused_before_it_is_parsed(folder, tmp_path):
    copy = _copy(folder, tmp_path)
    data = bytearray((copy / C.MODEL_FILE).read_bytes())
    data[-1] ^= 1
    (copy / C.MODEL_FILE).write_bytes(bytes(data))
    with pytest.raises(DataError, match="does not match the model card") as err:
        C.read_card(copy)
    assert err.value.code == ExitCode.DATA and "\n" not in err.value.oneline()
    labels = _copy(folder, tmp_path / "l")
    (labels / C.LABELS_FILE).write_bytes(b"x")
    with pytest.raises(DataError, match=C.LABELS_FILE):
        C.read_card(labels)


@pytest.mark.parametrize("target", [C.MODEL_FILE, C.LABELS_FILE, C.CARD_FILE, "model.pt"])
@pytest.mark.parametrize("repin", [False, True])
def test_planted_pickle_never_runs(folder, tmp_path, target, repin):
    copy = _copy(folder, tmp_path)
    marker = tmp_path / "payload-ran"
    _pickle_bomb(copy / target, marker)
    if repin and target in (C.MODEL_FILE, C.LABELS_FILE):
        _set_checksum(copy, target)

    def use():
        C.read_card(copy)
        C.read_labels(copy)
        return load_model(copy / C.MODEL_FILE)

    if target == "model.pt":  # a stray file is never read: the folder still works
        use()
    else:
        with pytest.raises(DataError):
            use()
    assert not marker.exists()


def test_old_pickle_folder_is_refused_in_one_line(folder, tmp_path):
    old = _copy(folder, tmp_path)
    (old / C.MODEL_FILE).unlink()
    marker = tmp_path / "payload-ran"
    _pickle_bomb(old / MF.LEGACY_FILE, marker)
    with pytest.raises(DataError, match="pickle-based model file of an older version") as err:
        C.read_card(old)
    with pytest.raises(DataError, match="older version"):
        load_model(old / MF.LEGACY_FILE)
    assert "\n" not in err.value.oneline() and not marker.exists()


def test_card_without_checksums_is_refused(folder, tmp_path):
    copy = _copy(folder, tmp_path)
    card = json.loads((copy / C.CARD_FILE).read_text())
    del card["Files"]
    (copy / C.CARD_FILE).write_text(json.dumps(card))
    with pytest.raises(DataError, match="SHA-256"):
        C.read_card(copy)
    card["Files"] = {C.MODEL_FILE: "0", C.LABELS_FILE: "0", "../escape": "0"}
    (copy / C.CARD_FILE).write_text(json.dumps(card))
    with pytest.raises(DataError):
        C.read_card(copy)


def test_checkpoints_load_weights_only(tmp_path):
    marker = tmp_path / "payload-ran"
    _pickle_bomb(tmp_path / "checkpoint.pt", marker)
    with pytest.raises(DataError, match="cannot read model checkpoint"):
        load_checkpoint(tmp_path / "checkpoint.pt")
    assert not marker.exists()
    state = {"rng": np.random.get_state(), "stats": {"01": (np.ones(2), np.zeros(2))},
             "model": {"w": torch.ones(3)}}
    torch.save(state, tmp_path / "ok.pt")
    back = load_checkpoint(tmp_path / "ok.pt")
    assert np.array_equal(back["rng"][1], state["rng"][1]) and torch.equal(back["model"]["w"],
                                                                            torch.ones(3))
