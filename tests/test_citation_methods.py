"""CITATION.md cites the seed papers' methods a group run used, and only those."""

from __future__ import annotations

from bids_eeg2fmri.config import Config
from bids_eeg2fmri.reports.method_refs import METHOD_REFERENCES
from bids_eeg2fmri.reports.methods import stages_from_config, write_citation


def _citation(tmp_path, models, **group):
    d = Config.from_sources(group).to_dict()
    stages = stages_from_config(d, ran=["models"], extra={"models": {"models": models}})
    return write_citation(tmp_path, stages).read_text()


def _refs(text):
    refs = text.split("## References", 1)[1] if "## References" in text else ""
    return {k for k, v in METHOD_REFERENCES.items() if v in refs}


def test_classification_attribution_raw_eeg_unet_and_segments_are_cited(tmp_path):
    text = _citation(tmp_path, ["ridge", "mlp", "unet", "rnn-seq2seq"], classify="cohort",
                     classify_objective="both", attribution=True, attribution_steps=16,
                     eeg_features="raw", reconstruct="segments", segments=4)
    assert _refs(text) == {"calhas2023", "sundararajan2017", "kokhlikyan2020", "bricman2021",
                           "bruno2025", "ronneberger2015", "poster"}
    assert "classified by 'cohort'" in text and "contrastive projection" in text
    assert "integrated gradients (Sundararajan et al., 2017; 16 steps" in text
    assert "raw EEG time series as they did" in text
    assert "4 segment models per run" in text


def test_only_what_ran_is_cited(tmp_path):
    assert _refs(_citation(tmp_path, ["ridge"])) == set()
    # fMRI→EEG only: the EEG→fMRI methods are not cited even when their options are set.
    text = _citation(tmp_path, ["ridge", "rnn-seq2seq"], direction="fmri2eeg",
                     eeg_features="raw")
    assert _refs(text) == {"poster"}
    text = _citation(tmp_path, ["topo-attention-calhas"], direction="eeg2fmri")
    assert _refs(text) == {"calhas2022", "calhas2023"} and "Captum" not in text
