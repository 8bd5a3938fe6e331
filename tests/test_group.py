"""Group level and applying trained models, end to end on a small simulated dataset.

One session-scoped fixture simulates three paired participants and one EEG-only participant, runs
the participant level once (``--model-ready``, affine registration, a small EPI grid), then the
group level once (both directions, default models, LOSO, few epochs) and applies the trained
models. The tests read what those runs wrote.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from bids_eeg2fmri.bids.layout import ParticipantPlan
from bids_eeg2fmri.cli.run import main as app
from bids_eeg2fmri.cli.simulate import main as simulate
from bids_eeg2fmri.config import Config
from bids_eeg2fmri.modelfiles import read_model_file
from bids_eeg2fmri.errors import DataError
from bids_eeg2fmri.group.run import metrics_path, single_region_path

from conftest import tree_hash

EEG_ONLY = "04"
DIRECTIONS = {"eeg2fmri": ("ridge", "mlp"), "fmri2eeg": ("ridge", "rnn-seq2seq")}
# The simulator's four driven regions and two un-driven controls keep the targets few.
REGIONS = ["Left_Occipital_Pole", "Right_Frontal_Pole", "Left_Precentral_Gyrus",
           "Left_Temporal_Pole", "Right_Occipital_Pole", "Left_Frontal_Pole"]
GROUP_ARGS = ["--epochs", "4", "--window-trs", "8", "--horizon-trs", "2", "--random-seed", "0",
              "--weight-decay", "0.5", "--regions", *REGIONS]


@pytest.fixture(scope="session")
def group_run(tmp_path_factory):
    """Simulate → participant level → group level; returns paths, timings and input hashes."""
    root = tmp_path_factory.mktemp("group")
    bids, out, work = root / "bids", root / "out", root / "work"
    assert simulate([str(bids), "--subjects", "3", "--eeg-only-subjects", "1", "--volumes", "64",
                     "--grid", "32", "32", "20", "--voxel-size", "6", "6", "7", "--seed", "5",
                     "--quiet"]) == 0
    before = tree_hash(bids)
    t0 = time.perf_counter()
    assert app([str(bids), str(out), "participant", "-w", str(work), "--skip-bids-validation",
                "--model-ready", "--registration", "affine", "--output-res", "4",
                "--nprocs", "2"]) == 0
    t1 = time.perf_counter()
    code = app([str(bids), str(out), "group", "-w", str(work), *GROUP_ARGS])
    t2 = time.perf_counter()
    return {"bids": bids, "out": out, "work": work, "code": code, "before": before,
            "participant_s": t1 - t0, "group_s": t2 - t1}


@pytest.fixture(scope="session")
def applied(group_run):
    """The EEG→fMRI ridge applied through the CLI to the EEG-only participant, and the fMRI→EEG
    ridge applied with fine-tuning to a paired participant."""
    bids, out, work = group_run["bids"], group_run["out"], group_run["work"]
    eeg_model = out / "models" / "eeg2fmri" / "ridge"
    code = app([str(bids), str(out), "participant", "--participant-label", EEG_ONLY, "-w",
                str(work), "--skip-bids-validation", "--model-dir", str(eeg_model)])
    from bids_eeg2fmri.apply.run import apply_models

    config = Config.from_sources({"bids_dir": bids, "output_dir": out, "work_dir": work,
                                  "model_dir": out / "models" / "fmri2eeg" / "ridge",
                                  "finetune": True, "epochs": 4})
    apply_models(config, [ParticipantPlan("01", [])])
    return {"code": code, "eeg_model": eeg_model}


def test_group_level_writes_metrics_models_and_report(group_run):
    out = group_run["out"]
    assert group_run["code"] == 0
    for direction, models in DIRECTIONS.items():
        for name in models:
            table = pd.read_csv(metrics_path(out, direction, name), sep="\t",
                                dtype={"test_subject": str})
            assert len(table) == 3 and list(table["test_subject"]) == ["01", "02", "03"]
            assert set(table["direction"]) == {direction}
            assert {"mse", "r", "baseline_mean_mse", "baseline_subject_mse",
                    "test_subject"} <= set(table.columns)
            assert np.isfinite(table[["mse", "r"]].to_numpy()).all()
            folder = out / "models" / direction / name
            assert (folder / "model.safetensors").is_file() and (folder / "regions_dseg.nii.gz").is_file()
            card = json.loads((folder / "model.json").read_text())
            assert card["Direction"] == direction and card["Name"] == name
            assert card["Data"]["Subjects"] == ["01", "02", "03"]
            assert card["Data"]["NumberOfSamples"] > 0 and len(card["Data"]["Channels"]) == 32
            assert card["Data"]["Grid"]["Space"] == "MNI152NLin2009aSym"
            metrics = card["CrossValidation"]["Metrics"]
            assert {"mse", "r", "baseline_mean_mse", "baseline_subject_mse"} <= set(metrics)
            assert card["Software"]["bids_eeg2fmri"] and card["Architecture"]["Parameters"] > 0
            # Date-free: repeating the run with the same seed repeats the card.
            assert not re.search(r"\d{4}-\d\d-\d\dT\d\d:", json.dumps(card))
            # Hugging Face card sections; the run names are BIDS names; simulated says so.
            assert card["License"] and card["IntendedUse"] and card["Date"]
            assert card["TrainingData"]["Simulated"] is True
            assert "simulated" in card["Limitations"][0].lower()
            assert card["Provenance"]["runs"] == [f"sub-{s}_task-rest_run-1" for s in ("01", "02", "03")]
            assert "baseline_mean_mse" in card["Evaluation"]["ModelAndBaselines"]["Metrics"]
    for direction in DIRECTIONS:
        # simulated data: both directions carry the noise ceiling of the driven targets
        ridge = json.loads((out / f"models/{direction}/ridge/model.json").read_text())
        assert 0 < ridge["CrossValidation"]["Metrics"]["noise_ceiling"]["Mean"] <= 1
    html = (out / "group.html").read_text()
    assert "rnn-seq2seq" in html and "mlp" in html and "Learning curves" in html
    assert (out / "group" / "figures" / "desc-scores_group.svg").is_file()
    citation = (out / "logs" / "CITATION.md").read_text()
    assert "## Models" in citation and "## Functional MRI" in citation


def test_models_beat_baselines(group_run):
    """EEG→fMRI ridge beats both baselines in MSE; both ridges predict the driven signal.

    fMRI→EEG is scored on every channel × frequency bin, most of which no source modulates, so
    its pooled MSE sits at the baselines'; the band × channel-group cells of the simulated
    sources (``r_driven``) show what it learned, where both baselines have r = 0 by construction.
    """
    out = group_run["out"]
    for direction, models in DIRECTIONS.items():
        for name in models:
            t = pd.read_csv(metrics_path(out, direction, name), sep="\t")
            print(direction, name, t[["mse", "baseline_mean_mse", "baseline_subject_mse", "r",
                                      "r_driven"]].mean().round(4).to_dict())
    e2f = pd.read_csv(metrics_path(out, "eeg2fmri", "ridge"), sep="\t")
    assert e2f["mse"].mean() < e2f["baseline_mean_mse"].mean()
    assert e2f["mse"].mean() < e2f["baseline_subject_mse"].mean()
    assert e2f["r_driven"].mean() > 0.3
    assert (e2f["r_driven"] <= e2f["noise_ceiling"] + 0.1).all()
    f2e = pd.read_csv(metrics_path(out, "fmri2eeg", "ridge"), sep="\t")
    assert f2e["r_driven"].mean() > 0.25
    assert (f2e["r_driven"] <= f2e["noise_ceiling"] + 0.1).all()


def test_group_level_is_deterministic_and_resumable(group_run, tmp_path):
    """A second run with --resume repeats every metric (same seed, checkpoints reused)."""
    out, work, bids = group_run["out"], group_run["work"], group_run["bids"]
    first = pd.read_csv(metrics_path(out, "fmri2eeg", "rnn-seq2seq"), sep="\t")
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    assert app([str(bids), str(copy), "group", "-w", str(work), *GROUP_ARGS, "--resume",
                "--direction", "fmri2eeg", "--models", "rnn-seq2seq"]) == 0
    again = pd.read_csv(metrics_path(copy, "fmri2eeg", "rnn-seq2seq"), sep="\t")
    pd.testing.assert_frame_equal(first, again)


def test_single_region_analysis_through_the_cli(group_run, tmp_path):
    """``--single-region`` writes the region × band table and puts it into group.html; the
    occipital pole, which drives the occipital alpha source, gains most in that source's cell."""
    out, bids = group_run["out"], group_run["bids"]
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    tested = ["Left_Occipital_Pole", "Right_Frontal_Pole", "Right_Occipital_Pole"]
    assert app([str(bids), str(copy), "group", "-w", str(tmp_path / "w"), *GROUP_ARGS,
                "--direction", "fmri2eeg", "--models", "ridge", "--single-region",
                "--single-region-regions", *tested, "--nprocs", "2"]) == 0
    table = pd.read_csv(single_region_path(copy), sep="\t")
    assert set(table["region"]) == set(tested)
    assert {"cell", "mean_improvement", "p", "q", "significant", "rank"} <= set(table.columns)
    cell = table[table["cell"] == "alpha_occipital_alpha"].set_index("region")
    print(table.sort_values(["cell", "rank"]).to_string())
    assert cell["mean_improvement"].idxmax() == "Left_Occipital_Pole"
    assert cell.loc["Left_Occipital_Pole", "mean_improvement"] > 0
    html = (copy / "group.html").read_text()
    assert "the single-region analysis was not run" not in html
    assert (copy / "group" / "figures" / "desc-regionband_group.svg").is_file()
    assert "Left_Occipital_Pole" in html


def test_eeg_band_features_train_and_apply(group_run, tmp_path):
    """``--eeg-features bands``: EEG→fMRI on band power; the card records the bands and applying
    the model pools the EEG-only participant's spectrogram the same way."""
    out, bids = group_run["out"], group_run["bids"]
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    work = tmp_path / "w"
    assert app([str(bids), str(copy), "group", "-w", str(work), *GROUP_ARGS,
                "--direction", "eeg2fmri", "--models", "ridge", "--eeg-features", "bands"]) == 0
    table = pd.read_csv(metrics_path(copy, "eeg2fmri", "ridge"), sep="\t")
    print(table[["test_subject", "mse", "baseline_mean_mse", "r_driven"]].to_string())
    assert table["mse"].mean() < table["baseline_mean_mse"].mean()
    assert table["r_driven"].mean() > 0.3
    folder = copy / "models" / "eeg2fmri" / "ridge"
    card = json.loads((folder / "model.json").read_text())
    assert list(card["Data"]["EEGBands"]) == ["delta", "theta", "alpha", "beta"]
    assert card["Data"]["FramesPerTR"] == 1 and len(card["Data"]["Frequencies"]) == 4
    assert app([str(bids), str(copy), "participant", "--participant-label", EEG_ONLY, "-w",
                str(work), "--skip-bids-validation", "--model-dir", str(folder)]) == 0
    synth = copy / f"sub-{EEG_ONLY}/func/sub-{EEG_ONLY}_task-rest_run-1_space-" \
                   "MNI152NLin2009aSym_res-4_desc-synth_bold.nii.gz"
    assert np.isfinite(np.asarray(nib.load(synth).dataobj)).all()


def test_fmri_input_pca_trains_and_applies(group_run, tmp_path):
    """``--fmri-input pca``: voxel components as input, recorded in the card, saved with the
    model and used again when the model is applied to a participant's BOLD."""
    out, bids = group_run["out"], group_run["bids"]
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    work = tmp_path / "w"
    assert app([str(bids), str(copy), "group", "-w", str(work), *GROUP_ARGS,
                "--direction", "fmri2eeg", "--models", "ridge", "--fmri-input", "pca",
                "--pca-components", "12"]) == 0
    table = pd.read_csv(metrics_path(copy, "fmri2eeg", "ridge"), sep="\t")
    print(table[["test_subject", "mse", "baseline_mean_mse", "r", "r_driven",
                 "noise_ceiling"]].to_string())
    assert len(table) == 3 and np.isfinite(table["r_driven"]).all()
    assert table["r_driven"].mean() > 0.1
    folder = copy / "models" / "fmri2eeg" / "ridge"
    card = json.loads((folder / "model.json").read_text())
    assert card["Data"]["Input"] == "pca" and card["Data"]["Atlas"] is None
    state = read_model_file(folder / "model.safetensors")
    assert state["input_pca"]["components"].shape[0] == 12
    mask = np.asarray(nib.load(folder / "regions_dseg.nii.gz").dataobj)
    assert state["input_pca"]["components"].shape[1] == int((mask > 0).sum())
    assert app([str(bids), str(copy), "participant", "--participant-label", "01", "-w",
                str(work), "--skip-bids-validation", "--model-dir", str(folder)]) == 0
    synth = copy / "sub-01" / "eeg" / "sub-01_task-rest_run-1_desc-synth_spectrogram.h5"
    with h5py.File(synth) as fh:
        assert fh["spectrogram"].shape[1:3] == (32, len(fh["frequencies"]))
        assert np.isfinite(fh["spectrogram"][()]).all()


@pytest.mark.parametrize("extra, message", [
    (["--single-region-regions", "Nowhere_Gyrus"], "unknown region(s) Nowhere_Gyrus"),
    (["--direction", "eeg2fmri"], "analyses the fMRI→EEG direction"),
    (["--single-region-model", "mlp"], "is no fMRI→EEG model"),
    (["--fmri-input", "pca"], "needs --fmri-input regions"),
])
def test_single_region_bad_options_exit_64(group_run, tmp_path, capsys, extra, message):
    out, bids = group_run["out"], group_run["bids"]
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    before = tree_hash(copy)
    code = app([str(bids), str(copy), "group", "-w", str(tmp_path / "w"), *GROUP_ARGS,
                "--single-region", *extra])
    err = capsys.readouterr().err.strip()
    assert code == 64 and message in err and len(err.splitlines()) == 1, err
    assert tree_hash(copy) == before  # nothing trained or written


def test_too_few_participants_exit_18(group_run, tmp_path, capsys):
    out, bids = group_run["out"], group_run["bids"]
    code = app([str(bids), str(out), "group", "-w", str(tmp_path / "w"), "--cv", "kfold",
                "--cv-folds", "5"])
    err = capsys.readouterr().err.strip()
    assert code == 18 and "kfold needs at least 5" in err and len(err.splitlines()) == 1


def test_apply_eeg2fmri_to_eeg_only_participant(group_run, applied):
    """The synthesized BOLD of the EEG-only participant loads in nilearn with the right TR and
    follows the simulator's haemodynamic sources in the driven regions."""
    from nilearn.image import load_img

    from bids_eeg2fmri.simulate import load_ground_truth

    out, bids = group_run["out"], group_run["bids"]
    assert applied["code"] == 0
    # Applying to the EEG-only participant ran the EEG stage only; the methods text still
    # describes every stage that produced the dataset.
    citation = (out / "logs" / "CITATION.md").read_text()
    assert all(f"## {s}" in citation for s in ("Functional MRI", "EEG", "Models")), citation
    path = out / f"sub-{EEG_ONLY}/func/sub-{EEG_ONLY}_task-rest_run-1_space-MNI152NLin2009aSym_" \
                 "res-4_desc-synth_bold.nii.gz"
    img = load_img(str(path))
    meta = json.loads(path.with_name(path.name.replace(".nii.gz", ".json")).read_text())
    truth = load_ground_truth(bids, EEG_ONLY)
    tr = truth["params"]["tr"]
    assert img.ndim == 4 and img.header.get_zooms()[3] == pytest.approx(tr)
    assert meta["RepetitionTime"] == pytest.approx(tr) and meta["Model"]["Name"] == "ridge"
    assert img.shape[3] == len(meta["VolumeIndices"])
    labels = np.asarray(nib.load(applied["eeg_model"] / "regions_dseg.nii.gz").dataobj)
    regions = json.loads((applied["eeg_model"] / "model.json").read_text())["Data"]["Regions"]
    data = np.asarray(img.dataobj)
    # Noiseless haemodynamic source at each synthesized volume's mid-TR (time 0 = first volume).
    times = np.asarray(meta["VolumeIndices"]) * tr + tr / 2
    rs = []
    for k, source in enumerate(truth["source_names"]):
        region = truth["source_regions"][source]
        expected = np.interp(times, truth["source_times"], truth["sources_hrf"][:, k])
        synth = data[labels == regions.index(region) + 1].mean(axis=0)
        rs.append(np.corrcoef(synth, expected)[0, 1])
    print("synth vs truth r per driven region:", np.round(rs, 3))
    assert np.mean(rs) > 0.35 and max(rs) > 0.6


def test_apply_fmri2eeg_with_finetuning(group_run, applied):
    out = group_run["out"]
    path = out / "sub-01/eeg/sub-01_task-rest_run-1_desc-synth_spectrogram.h5"
    meta = json.loads(path.with_suffix(".json").read_text())
    with h5py.File(path) as fh:
        assert fh["spectrogram"].shape[1:3] == (32, len(fh["frequencies"]))
        # The 3 flagged non-steady volumes of the 64 are not inputs, so not synthesized.
        assert fh["volume_indices"][:].tolist() == list(range(3, 64))
    assert meta["Model"]["Direction"] == "fmri2eeg"
    assert {"Base", "FineTuned"} <= set(meta["FineTuning"])


def test_channel_mismatch_exits_65(group_run, applied, tmp_path):
    """A spectrogram whose channels differ from the model's is refused with one line."""
    from bids_eeg2fmri.apply.run import apply_models

    out = group_run["out"]
    other = tmp_path / "out"
    src = out / f"sub-{EEG_ONLY}" / "eeg"
    dst = other / f"sub-{EEG_ONLY}" / "eeg"
    dst.mkdir(parents=True)
    shutil.copy(out / "dataset_description.json", other)
    for f in src.glob("*_desc-stft_spectrogram.*"):
        shutil.copy(f, dst)
    h5 = next(dst.glob("*.h5"))
    with h5py.File(h5, "r+") as fh:
        names = [c.decode() for c in fh["channels"][:]]
        del fh["channels"]
        fh["channels"] = np.array(["Xx"] + names[1:], dtype="S")
    config = Config.from_sources({"bids_dir": group_run["bids"], "output_dir": other,
                                  "work_dir": tmp_path / "w", "model_dir": applied["eeg_model"]})
    with pytest.raises(DataError) as exc:
        apply_models(config, [ParticipantPlan(EEG_ONLY, [])])
    assert exc.value.code == 65
    line = exc.value.oneline()
    assert f"lacks 1 channel(s) of the model's montage: {names[0]}" in line
    assert h5.name in line and "\n" not in line


def test_outputs_validate_and_are_indexed(group_run, applied):
    from bids.layout import BIDSLayout

    from bids_eeg2fmri.bids.validate import find_validator, run_validator

    out = group_run["out"]
    try:
        find_validator()
    except Exception as exc:  # the validator is a separate executable
        pytest.skip(f"bids-validator-deno not available: {exc}")
    result = run_validator(out)
    # bids-validator-deno reports folders listed in .bidsignore (figures/, group/, models/) as
    # NOT_INCLUDED directory entries (bids-standard/legacy-validator#2127); files are judged
    # individually. No file written by the group level or the apply step may fail.
    mine = [e for e in result.errors if not e[1].endswith("/")
            and any(k in e[1] for k in ("synth", "/group/", "/models/", "desc-cv"))]
    assert not mine, mine
    layout = BIDSLayout(str(out), validate=False, config=["bids", "derivatives"])
    synth = layout.get(subject=EEG_ONLY, desc="synth", suffix="bold", extension=".nii.gz")
    assert len(synth) == 1
    ents = synth[0].get_entities()
    assert ents["space"] == "MNI152NLin2009aSym" and str(ents["res"]) == "4"
    assert ents["datatype"] == "func" and synth[0].get_metadata()["RepetitionTime"] > 0
    spec = layout.get(subject="01", desc="synth", suffix="spectrogram", extension=".h5")
    assert len(spec) == 1 and spec[0].get_entities()["datatype"] == "eeg"
    metrics = layout.get(desc="cv", suffix="metrics", extension=".tsv", return_type="filename")
    assert len(metrics) == 4


def test_every_derivative_of_a_run_keeps_the_raw_volume_count(group_run):
    """The simulated runs start with 3 dummy scans: kept and flagged everywhere, never cut."""
    out, bids = group_run["out"], group_run["bids"]
    raws = sorted(bids.glob("sub-0[123]/func/*_bold.nii.gz"))
    assert len(raws) == 3
    for raw in raws:
        n = nib.load(raw).shape[3]
        src = raw.name.replace("_bold.nii.gz", "")
        func, eeg = out / raw.parent.relative_to(bids), out / raw.parent.parent.name / "eeg"
        space = "space-MNI152NLin2009aSym_res-4"
        counts = {
            "preproc": nib.load(func / f"{src}_{space}_desc-preproc_bold.nii.gz").shape[3],
            "model": nib.load(func / f"{src}_{space}_desc-model_bold.nii.gz").shape[3],
            "confounds": len(pd.read_csv(func / f"{src}_desc-confounds_timeseries.tsv", sep="\t")),
            "hmc": (func / f"{src}_from-orig_to-boldref_mode-image_desc-hmc_xfm.txt").read_text()
            .count("Transform:"),
            "bandpower": len(pd.read_csv(eeg / f"{src}_desc-bandpower_timeseries.tsv", sep="\t")),
        }
        with h5py.File(eeg / f"{src}_desc-stft_spectrogram.h5", "r") as fh:
            counts["spectrogram"] = len(fh["spectrogram"])
            assert fh["volume_indices"][:].tolist() == list(range(n))
        assert counts == dict.fromkeys(counts, n), (raw.name, counts)
        meta = json.loads((func / f"{src}_{space}_desc-preproc_bold.json").read_text())
        flags = pd.read_csv(func / f"{src}_desc-confounds_timeseries.tsv", sep="\t",
                            na_values="n/a").filter(like="non_steady_state_outlier")
        assert meta["NonSteadyStateVolumes"] == flags.shape[1] == 3
        assert flags.to_numpy().tolist() == np.eye(n)[:, :3].tolist()


def test_input_tree_unchanged(group_run, applied):
    assert tree_hash(group_run["bids"]) == group_run["before"]
    print(f"participant level {group_run['participant_s']:.0f} s, "
          f"group level {group_run['group_s']:.0f} s")


def test_different_montages_are_conformed_and_inconsistent_spectra_exit_65(group_run, tmp_path):
    """Channels in another order are reordered, a renamed channel is dropped (common) and listed
    in the card's Montage block; spectrograms of other frequencies exit 65 naming the file."""
    from bids_eeg2fmri.group.collect import collect
    from bids_eeg2fmri.group.runfiles import find_runs

    copy = tmp_path / "out"
    shutil.copytree(group_run["out"], copy, ignore=shutil.ignore_patterns("*.html", "figures",
                                                                          "models", "group"))
    h5 = copy / "sub-02/eeg/sub-02_task-rest_run-1_desc-stft_spectrogram.h5"
    with h5py.File(h5, "r+") as fh:
        names = [c.decode() for c in fh["channels"][:]]
        values = fh["spectrogram"][:]
        del fh["channels"]
        fh["channels"] = np.array(names[::-1], dtype="S")
    data = collect(find_runs(copy), "eeg2fmri", regions=REGIONS, cache_dir=tmp_path / "cache")
    run = next(r for r in data.runs if r.subject == "02")
    assert data.spec.channels == names
    # the BOLD keeps every volume: spectrogram rows fill the valid volumes in order
    kept = values[len(values) - int(run.eeg_valid.sum()):]
    np.testing.assert_array_equal(run.eeg[run.eeg_valid, 0], kept[:, -1])  # labelled names[0] now
    with h5py.File(h5, "r+") as fh:
        del fh["channels"]
        fh["channels"] = np.array(["Xx"] + names[1:], dtype="S")
    data = collect(find_runs(copy), "eeg2fmri", regions=REGIONS, cache_dir=tmp_path / "cache2")
    card = data.describe()["Montage"]
    assert card["Mode"] == "common" and card["Channels"] == names[1:]
    assert card["DroppedPerRun"]["sub-02_task-rest_run-1"] == ["Xx"]
    assert card["DroppedPerRun"]["sub-01_task-rest_run-1"] == [names[0]]
    # interpolate: a name without any position cannot be interpolated into the other runs
    with pytest.raises(DataError, match="no position for EEG channel.*Xx") as exc:
        collect(find_runs(copy), "eeg2fmri", regions=REGIONS, cache_dir=tmp_path / "cache2",
                eeg_channels="interpolate")
    assert exc.value.code == 65
    # a standard position: sub-02 gets names[0] back, the others get Iz, all on one montage
    assert "Iz" not in names
    with h5py.File(h5, "r+") as fh:
        del fh["channels"]
        fh["channels"] = np.array(["Iz"] + names[1:], dtype="S")
    data = collect(find_runs(copy), "eeg2fmri", regions=REGIONS, cache_dir=tmp_path / "cache2",
                   eeg_channels="interpolate")
    card = data.describe()["Montage"]
    assert card["Mode"] == "interpolate" and data.spec.channels == names + ["Iz"]
    assert card["InterpolatedPerRun"]["sub-02_task-rest_run-1"] == [names[0]]
    assert card["InterpolatedPerRun"]["sub-01_task-rest_run-1"] == ["Iz"]
    for run in data.runs:
        assert run.eeg.shape[1] == len(names) + 1 and np.isfinite(run.eeg).all()
    with h5py.File(h5, "r+") as fh:
        fh["frequencies"][...] = fh["frequencies"][:] * 2
    with pytest.raises(DataError) as exc:
        collect(find_runs(copy), "eeg2fmri", regions=REGIONS, cache_dir=tmp_path / "cache3")
    assert exc.value.code == 65 and h5.name in exc.value.oneline()
    assert "differs from the other runs" in exc.value.oneline()


def test_model_card_json_has_no_non_finite_numbers():
    import math

    from bids_eeg2fmri.group.card import json_safe

    card = {"Training": {"BestValLoss": math.inf, "History": [{"val": float("nan"), "train": 1.0}]},
            "r": np.float32(0.5)}
    safe = json_safe(card)
    assert safe["Training"]["BestValLoss"] is None
    assert safe["Training"]["History"][0] == {"val": None, "train": 1.0}
    assert json.loads(json.dumps(safe, allow_nan=False, default=float))["r"] == 0.5


def test_fmriprep_outputs_as_fmri_input_participant_and_group(group_run, tmp_path):
    """fMRIPrep-shaped derivatives (2009c space, non-steady-state volumes kept and flagged, as
    fMRIPrep leaves them) made from the simulated runs: participant level with
    --fmri-derivatives, then the group level trains on them."""
    from fmriprepdata import write_description, write_run

    out = group_run["out"]
    prep = tmp_path / "fmriprep"
    write_description(prep)
    for bold in sorted(out.glob("sub-*/func/*_space-MNI152NLin2009aSym_res-4_desc-preproc_bold.nii.gz")):
        meta = json.loads(bold.with_name(bold.name.replace(".nii.gz", ".json")).read_text())
        img = nib.load(bold)
        data = np.asarray(img.dataobj, dtype=np.float32)
        d = int(meta["NonSteadyStateVolumes"])
        assert d > 0 and "NumberOfVolumesDiscardedByUser" not in meta  # kept, as fMRIPrep does
        mask = np.asarray(nib.load(str(bold).replace("desc-preproc_bold", "desc-brain_mask")).dataobj)
        prefix = bold.name.split("_space-")[0]
        write_run(prep, prefix, data, img.affine, tr=meta["RepetitionTime"], task="rest",
                  res=None, non_steady=d, mask=mask > 0)
    bids, out2 = group_run["bids"], tmp_path / "out"
    assert app([str(bids), str(out2), "participant", "-w", str(group_run["work"]),
                "--skip-bids-validation", "--fmri-derivatives", str(prep), "--output-res", "4",
                "--nprocs", "2"]) == 0
    metas = [json.loads(p.read_text()) for p in
             out2.glob("sub-*/func/*_space-MNI152NLin2009aSym_res-4_desc-preproc_bold.json")]
    assert len(metas) == 3 and all(m["SourceSpace"] == "MNI152NLin2009cAsym" for m in metas)
    assert not list(out2.glob("sub-*/func/*_xfm.*"))
    assert app([str(bids), str(out2), "group", "-w", str(tmp_path / "work"), *GROUP_ARGS,
                "--direction", "eeg2fmri", "--models", "ridge"]) == 0
    card = json.loads((out2 / "models" / "eeg2fmri" / "ridge" / "model.json").read_text())
    assert len(card["Data"]["Runs"]) == 3 and card["Data"]["Montage"]["Mode"] == "common"


@pytest.mark.slow
def test_attribution_attention_and_classify_checks_through_the_cli(group_run, tmp_path, capsys):
    """Issue 15 through the group level: --attribution writes relevance tables, topo-attention
    its attention map, both in group.html; --classify with a column of too few participants per
    group exits 18 before training."""
    out, bids = group_run["out"], group_run["bids"]
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    args = [str(bids), str(copy), "group", "-w", str(tmp_path / "w"), *GROUP_ARGS,
            "--direction", "eeg2fmri", "--epochs", "1"]
    assert app([*args, "--models", "ridge", "topo-attention", "--attribution",
                "--attribution-region", REGIONS[0], "--attribution-steps", "4"]) == 0
    for m in ("ridge", "topoattention"):
        rel = pd.read_csv(copy / "group" / f"direction-eeg2fmri_model-{m}_desc-attribution_"
                          "relevance.tsv", sep="\t")
        assert rel["relevance"].sum() == pytest.approx(1.0)
        assert set(rel["target"]) == {REGIONS[0]}
    att = pd.read_csv(copy / "group" / "direction-eeg2fmri_model-topoattention_desc-attention_"
                      "matrix.tsv", sep="\t", index_col=0)
    assert np.allclose(att.sum(axis=1), 1.0, atol=1e-4)
    html = (copy / "group.html").read_text()
    assert "Attribution and attention" in html and "drawing it failed" not in html
    capsys.readouterr()
    assert app([*args, "--models", "mlp", "--classify", "group"]) == 18
    err = capsys.readouterr().err.strip()
    assert "two groups of two" in err and len(err.splitlines()) == 1
