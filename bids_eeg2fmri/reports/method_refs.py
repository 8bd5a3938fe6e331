"""The methods text and references of the seed papers' methods, for ``logs/CITATION.md``.

:func:`seed_methods` reads the group options and trained model names
(:func:`~bids_eeg2fmri.reports.methods.models_paragraph`'s input) and returns a sentence per
method that ran, with the keys of :data:`METHOD_REFERENCES` it cites: only what was used is
cited. Works whose title or venue this project does not record are cited by the description the
model registry uses for them, rather than by a guessed title.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

METHOD_REFERENCES = {
    "calhas2022": "Calhas D, Henriques R (2022) EEG to fMRI synthesis benefits from attentional "
                  "graphs of electrode relationships. arXiv:2203.03481.",
    "calhas2023": "Calhas D, Romero E, Henriques R (2023) EEG-to-fMRI neuroimaging cross modal "
                  "synthesis in Python (the EEG-to-fMRI package). Proceedings of the Python in "
                  "Science Conference (SciPy 2023).",
    "sundararajan2017": "Sundararajan M, Taly A, Yan Q (2017) Axiomatic attribution for deep "
                        "networks. Proceedings of the 34th International Conference on Machine "
                        "Learning (ICML), PMLR 70:3319–3328.",
    "kokhlikyan2020": "Kokhlikyan N et al. (2020) Captum: a unified and generic model "
                      "interpretability library for PyTorch. arXiv:2009.07896.",
    # Title, authors and date from the authors' repository (paulbricman/EEG2fMRI,
    # article/article.tex: University of Groningen, July 2021).
    "bricman2021": "Bricman P, Borst JP (2021) EEG2fMRI: Cross-Modal Synthesis for Functional "
                   "Neuroimaging. University of Groningen (dense, Siamese per-channel CNN and "
                   "transformer models on raw EEG time series).",
    "bruno2025": "Bruno et al. (2025) EEG→fMRI synthesis with a 3-D CNN autoencoder and a "
                 "transformer over previous volumes, compared with a U-Net.",
    "ronneberger2015": "Ronneberger O, Fischer P, Brox T (2015) U-Net: convolutional networks "
                       "for biomedical image segmentation. MICCAI 2015, LNCS 9351:234–241.",
    "poster": "Constructing EEG spectrograms from fMRI data using an artificial neural network "
              "(poster; recurrent encoder, autoregressive decoder, subject-specific segment "
              "models and fine-tuning).",
}

_BRICMAN_MODELS = ("mlp", "cnn", "transformer")


def seed_methods(options: Mapping[str, Any], names: Sequence[str]) -> tuple[str, list[str]]:
    """Sentences and reference keys for the seed papers' methods this run used.

    Parameters
    ----------
    options
        The ``[group]`` options (``Config.to_dict()["group"]`` plus the models paragraph's
        extras): ``classify``, ``classify_objective``, ``attribution``, ``attribution_steps``,
        ``eeg_features``, ``reconstruct``, ``segments``, ``finetune``, ``direction``.
    names
        The trained model names.

    Returns
    -------
    text, refs
        Sentences to append to the models paragraph (empty when none applies) and the keys of
        :data:`METHOD_REFERENCES` they cite, in order of first citation.
    """
    names = list(names)
    direction = options.get("direction", "both")
    eeg2fmri = direction != "fmri2eeg"
    parts: list[str] = []
    refs: list[str] = []

    def cite(*keys: str) -> None:
        refs.extend(k for k in keys if k not in refs)

    if eeg2fmri and any(n.startswith("topo-attention") for n in names):
        parts.append("The topographical-attention model follows Calhas & Henriques (2022)"
                     + (", with the layers of the EEG-to-fMRI package (Calhas et al., 2023)"
                        if "topo-attention-calhas" in names else "") + ".")
        cite("calhas2022", *(["calhas2023"] if "topo-attention-calhas" in names else []))
    raw = options.get("eeg_features") == "raw"
    if eeg2fmri and (raw or any(n in _BRICMAN_MODELS for n in names)):
        parts.append("The dense, convolutional and transformer models follow Bricman & Borst "
                     "(2021)" + (", reading the raw EEG time series as they did" if raw else "")
                     + ".")
        cite("bricman2021")
    if eeg2fmri and ("unet" in names or "transformer-cnn" in names):
        which = [n for n in ("transformer-cnn", "unet") if n in names]
        parts.append(f"{' and '.join(which)} follow Bruno et al. (2025)"
                     + (", the U-Net after Ronneberger et al. (2015)" if "unet" in names else "")
                     + ".")
        cite("bruno2025", *(["ronneberger2015"] if "unet" in names else []))
    fmri2eeg = direction != "eeg2fmri"
    segments = options.get("reconstruct") == "segments"
    if fmri2eeg and ("rnn-seq2seq" in names or segments or options.get("finetune")):
        parts.append("The fMRI→EEG recurrent model"
                     + (f", its {int(options.get('segments', 5))} segment models per run"
                        if segments else "")
                     + (" and the base-versus-fine-tuned comparison" if options.get("finetune")
                        else "") + " follow the poster on constructing EEG spectrograms from "
                     "fMRI.")
        cite("poster")
    if eeg2fmri and options.get("classify"):
        objective = options.get("classify_objective", "crossentropy")
        heads = {"crossentropy": "logistic regression (likelihood variant)",
                 "contrastive": "a contrastive projection with nearest-centroid decisions",
                 "both": "logistic regression (likelihood variant) and a contrastive "
                         "projection"}.get(objective, objective)
        parts.append(
            f"Participants were classified by '{options['classify']}' from their EEG through "
            f"the frozen synthesis encoder with {heads}, cross-validated by participant with a "
            "label-permutation test, after the classification extension of the EEG-to-fMRI "
            "package (Calhas et al., 2023).")
        cite("calhas2023")
    if eeg2fmri and options.get("attribution"):
        parts.append(
            "The relevance of each EEG channel and frequency to the synthesized signal was "
            f"estimated by integrated gradients (Sundararajan et al., 2017; "
            f"{int(options.get('attribution_steps', 32))} steps, zero baseline) as implemented "
            "in Captum (Kokhlikyan et al., 2020).")
        cite("sundararajan2017", "kokhlikyan2020")
    return " ".join(parts), refs
