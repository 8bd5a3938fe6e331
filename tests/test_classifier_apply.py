"""A saved ``--classify`` classifier applied to a new participant (``--model-dir``), and the
default encoder of ``--classify-model`` (the deep model with the best cross-validated r)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import _torch_threads  # noqa: F401  (one thread)
import h5py
import numpy as np
import pandas as pd
import pytest

from bids_eeg2fmri.bids.derivatives import write_dataset_description, write_sidecar
from bids_eeg2fmri.bids.layout import ParticipantPlan
from bids_eeg2fmri.config import Config
from bids_eeg2fmri.errors import DataError, UsageError
from bids_eeg2fmri.group import card as C
from bids_eeg2fmri.group.classify import encoder_model, run_classification
from bids_eeg2fmri.training import TrainConfig, fit
from bids_eeg2fmri.training.classifier import encoder_features, fit_final_head
from eeg2fmri_sim import simulate

HELD_OUT = "07"


def _spectrogram(out: Path, run, spec) -> Path:
    """The participant level's spectrogram of an EEG-only run (the files apply reads)."""
    eeg_dir = out / f"sub-{run.subject}" / "eeg"
    eeg_dir.mkdir(parents=True)
    path = eeg_dir / f"sub-{run.subject}_task-rest_run-1_desc-stft_spectrogram.h5"
    n = len(run.eeg)
    with h5py.File(path, "w") as h5:
        h5.create_dataset("spectrogram", data=run.eeg.astype(np.float32))
        h5.create_dataset("frequencies", data=np.asarray(spec.frequencies))
        h5.create_dataset("frame_times", data=np.arange(spec.n_frames) * spec.tr / spec.n_frames)
        h5.create_dataset("channels", data=np.array(spec.channels, dtype=h5py.string_dtype()))
        h5.create_dataset("volume_indices", data=np.arange(n))
        h5.create_dataset("volume_onsets", data=np.arange(n) * spec.tr)
    write_sidecar(path, {"RepetitionTime": spec.tr, "Channels": list(spec.channels)})
    return path


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """Six participants with a group effect train the encoder and the classifier (written as the
    group level writes them); a seventh, EEG only, is held out."""
    root = tmp_path_factory.mktemp("classify")
    runs, spec, info = simulate(n_subjects=7, n_volumes=60, target="regions", group_effect=0.8,
                                n_channels=8, seed=2)
    train, held = [r for r in runs if r.subject != HELD_OUT], runs[-1]
    bids, out = root / "bids", root / "out"
    bids.mkdir()
    pd.DataFrame({"participant_id": [f"sub-{s}" for s in info["cohort"]],
                  "cohort": list(info["cohort"].values())}).to_csv(
        bids / "participants.tsv", sep="\t", index=False)
    write_dataset_description(out, [bids])
    config = Config.from_sources({"bids_dir": bids, "output_dir": out, "work_dir": root / "w",
                                  "classify": "cohort", "classify_permutations": 0,
                                  "cv_folds": 3})
    fitted = fit(train, spec, "mlp", train_config=TrainConfig(epochs=2, seed=0))
    folder = out / "models" / "eeg2fmri" / "mlp"
    fitted.save(folder / C.MODEL_FILE)
    labels = np.zeros((4, 4, 4), dtype=np.int16)
    labels.flat[:len(spec.region_names)] = np.arange(1, len(spec.region_names) + 1)
    C.write_model_folder(folder, fitted, labels, np.eye(4),
                         {"Format": C.CARD_FORMAT, "Name": "mlp", "Direction": "eeg2fmri"})
    data = SimpleNamespace(runs=train, spec=spec,
                           subjects=sorted(r.subject for r in train))
    run_classification(config, data, fitted, "mlp", out, selection="test")
    _spectrogram(out, held, spec)
    return {"out": out, "bids": bids, "fitted": fitted, "held": held, "train": train,
            "labels": info["cohort"], "spec": spec}


def _apply(saved, tmp_path, folder):
    from bids_eeg2fmri.apply.run import apply_models

    config = Config.from_sources({"bids_dir": saved["bids"], "output_dir": saved["out"],
                                  "work_dir": tmp_path / "w", "model_dir": folder})
    return apply_models(config, [ParticipantPlan(HELD_OUT, [])])


def test_classifier_applied_to_a_held_out_participant_matches_memory(saved, tmp_path):
    from bids_eeg2fmri.data.windows import index_samples

    out = saved["out"]
    folder = out / "models" / "classifier" / "cohort_crossentropy"
    assert _apply(saved, tmp_path, folder) == 0
    path = out / f"sub-{HELD_OUT}" / "eeg" / f"sub-{HELD_OUT}_desc-classifyCohortCrossentropy_predictions.tsv"
    table = pd.read_csv(path, sep="\t")
    assert table["participant_id"].tolist() == [f"sub-{HELD_OUT}"]
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["Model"]["Objective"] == "crossentropy" and "predicted" in meta

    # The same prediction in memory: the encoder and the head refitted as the group level did.
    fitted, train, held = saved["fitted"], saved["train"], saved["held"]
    samples = index_samples(train, fitted.window)
    labels = {s: saved["labels"][s] for s in samples["subject"].unique()}
    red, head = fit_final_head(encoder_features(fitted, train, samples),
                               samples["subject"].to_numpy(), labels, ["control", "patient"],
                               seed=0)
    new = index_samples([held], fitted.window)
    scores = head.scores(red.transform(encoder_features(fitted, [held], new))).mean(axis=0)
    expected = ["control", "patient"][int(np.argmax(scores))]
    assert table["predicted"].item() == expected
    assert table["n_windows"].item() == len(new)
    np.testing.assert_allclose(table[["score_control", "score_patient"]].to_numpy()[0], scores,
                               rtol=1e-5)
    probs = table[["probability_control", "probability_patient"]].to_numpy()[0]
    assert probs.sum() == pytest.approx(1.0, abs=1e-5) and np.argmax(probs) == np.argmax(scores)


def test_classifier_refuses_changed_or_foreign_encoder(saved, tmp_path):
    import shutil

    out = tmp_path / "out"
    shutil.copytree(saved["out"], out)
    folder = out / "models" / "classifier" / "cohort_crossentropy"
    card = json.loads((folder / C.CARD_FILE).read_text())
    assert card["Encoder"]["Selection"] == "test" and len(card["Encoder"]["WeightsSHA256"]) == 64
    # Another encoder under the same name: the weights' digest no longer matches.
    other = fit(saved["train"], saved["spec"], "mlp", train_config=TrainConfig(epochs=2, seed=1))
    enc = out / "models" / "eeg2fmri" / "mlp"
    other.save(enc / C.MODEL_FILE)
    enc_card = json.loads((enc / C.CARD_FILE).read_text())
    enc_card["Files"][C.MODEL_FILE] = C.sha256(enc / C.MODEL_FILE)
    (enc / C.CARD_FILE).write_text(json.dumps(enc_card))
    with pytest.raises(DataError, match="weights differ"):
        _apply({**saved, "out": out}, tmp_path, folder)
    # A changed head file fails its card's checksum.
    head = folder / "model.safetensors"
    head.write_bytes(head.read_bytes()[:-1] + b"\0")
    with pytest.raises(DataError):
        _apply({**saved, "out": out}, tmp_path, folder)


def test_default_encoder_is_the_best_cross_validated_deep_model():
    models = ["ridge", "mlp", "topo-attention"]
    table = pd.DataFrame({"direction": "eeg2fmri", "split": "leak-free",
                          "model": ["ridge", "ridge", "mlp", "mlp", "topo-attention",
                                    "topo-attention"],
                          "r": [0.9, 0.9, 0.10, 0.20, 0.30, 0.25]})
    name, why = encoder_model("", models, table)
    assert name == "topo-attention" and "mlp 0.150" in why and "topo-attention 0.275" in why
    # A leaky split is not evidence; ridge never is (linear: no group difference passes).
    leaky = pd.concat([table, pd.DataFrame({"direction": "eeg2fmri", "split": "leaky",
                                            "model": ["mlp"], "r": [5.0]})])
    assert encoder_model("", models, leaky)[0] == "topo-attention"
    table.loc[table["model"] == "mlp", "r"] = 0.5
    assert encoder_model("", models, table)[0] == "mlp"
    assert encoder_model("", models, None)[0] == "mlp"  # no scores: the first deep model
    assert encoder_model("", ["ridge"], table)[0] == "ridge"
    assert encoder_model("topo-attention", models, table) == ("topo-attention", "--classify-model")
    with pytest.raises(UsageError):
        encoder_model("unet", models, table)


def test_preflight_checks_a_classifier_folder(saved):
    """--model-dir with a classifier is checked at start-up like a synthesis model folder."""
    from bids_eeg2fmri.cli.preflight import check_model_dir

    folder = saved["out"] / "models" / "classifier" / "cohort_crossentropy"
    with_eeg = [SimpleNamespace(pairs=[SimpleNamespace(eeg=object(), bold=None)])]
    assert check_model_dir(folder, with_eeg)["Format"] == "bids_eeg2fmri-classifier-card-1"
    bold_only = [SimpleNamespace(pairs=[SimpleNamespace(eeg=None, bold=object())])]
    with pytest.raises(DataError, match="reads EEG"):
        check_model_dir(folder, bold_only)
