"""The evaluation's part of the group level: score options, the leaky/leak-free pair, and what
the report and the model cards show (called from :mod:`bids_eeg2fmri.group.run`)."""

from __future__ import annotations

from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd

from ..config import Config
from .comparison import gains_table, papers_table
from .crossdomain import other_domain
from .protocols import LEAKY_BANNER, LEAKY_REGIMES, PROTOCOLS, leak_free_regime


def evaluation_options(config: Config, direction: str, data: Any) -> dict[str, Any]:
    """EEG→fMRI score options: the target domain and, for voxel targets, per-voxel atlas labels
    (ROI r and FC similarity); nothing for fMRI→EEG."""
    if direction != "eeg2fmri":
        return {}
    out: dict[str, Any] = {"domain": config.group.target_domain}
    if data.spec.target == "voxels" and data.spec.mask is not None:
        from ..resources.atlases import load_atlas

        mask = np.asarray(data.spec.mask, dtype=bool)
        atlas = load_atlas(config.group.atlas, target=nib.Nifti1Image(mask.astype(np.uint8),
                                                                      data.affine))
        out["roi_labels"] = np.asarray(atlas.image.dataobj).astype(int)[mask]
    return out


def regimes(config: Config, n_subjects: int) -> list[tuple[str, str]]:
    """``(split label, regime)`` to cross-validate: the leak-free one first, then a requested
    leaky one (allowed by ``--allow-leaky-split``; the configuration refused it otherwise)."""
    cv = config.group.cv
    if cv in LEAKY_REGIMES:
        return [("leak-free", leak_free_regime(n_subjects)), ("leaky", cv)]
    return [("leak-free", cv)]


def banner(config: Config, n_subjects: int) -> str | None:
    """The leaky-split banner, or None."""
    if config.group.cv not in LEAKY_REGIMES:
        return None
    return LEAKY_BANNER.format(regime=config.group.cv, leak_free=leak_free_regime(n_subjects))


def evaluation_note(config: Config) -> str:
    """The report's line on the domain and the protocol (with the participant-level settings the
    protocol's paper used, which ``--protocol`` applies when preprocessing)."""
    gr = config.group
    line = f"EEG→fMRI target domain: {gr.target_domain}"
    if gr.target_domain == "intensity":
        line += f" ({gr.intensity_grid} grid)"
    line += (f"; also scored in the {other_domain(gr.target_domain)} domain (predictions "
             f"mapped, columns {other_domain(gr.target_domain)}_*)")
    if gr.protocol:
        p = PROTOCOLS[gr.protocol]
        line += f"; protocol {gr.protocol}: {p['description']}"
        if p["participant"]:
            line += ("; the paper's participant-level settings (applied by --protocol at the "
                     "participant level): "
                     + ", ".join(f"{k} = {v}" for k, v in p["participant"].items()))
    return line


def label_leaky(table: pd.DataFrame) -> pd.DataFrame:
    """The table with ``(leaky split)`` after the model name of leaky rows, so summaries keep the
    two regimes apart."""
    if "split" not in table:
        return table
    leaky = (table["split"] == "leaky").to_numpy()
    return table.assign(model=np.where(leaky, table["model"].astype(str) + " (leaky split)",
                                       table["model"]))


def report_tables(table: pd.DataFrame, config: Config) -> list[tuple[str, str, pd.DataFrame]]:
    """The report's evaluation tables: model minus best baseline, and the papers' numbers."""
    table = table[table["split"] != "leaky"] if "split" in table else table
    gains = gains_table(table)
    return [
        ("Model minus best baseline",
         "Mean over folds of the model's score minus the best baseline's (training mean, the "
         "test subject's own mean from its other runs or blocks, and that mean plus the "
         "training-mean fluctuation) on the same metric and domain: positive is better for r, "
         "SSIM and PSNR, negative for RMSE and MSE. EEG→fMRI is scored in both domains: "
         "'trained' in the models' own, 'mapped' with the predictions mapped to the other "
         "(baselines computed there).", gains),
        ("The papers' numbers vs the mean volume here",
         f"Each paper's reported number beside what the training-mean volume (and the best "
         f"model) scores on the same metric in the paper's domain here; the EEG→fMRI models "
         f"trained on {config.group.target_domain}. A reported number at or below the mean "
         f"volume's is no evidence of prediction.",
         papers_table(table, config.group.target_domain)),
    ]


def card_evaluation(table: pd.DataFrame, config: Config, n_subjects: int,
                    direction: str = "eeg2fmri") -> dict[str, Any]:
    """The model card's evaluation additions: domain, protocol, leak banner and the tables.

    The metric domains are those of EEG→fMRI targets; an fMRI→EEG model reads its BOLD input as
    fluctuations whatever ``--target-domain`` is, which its card says instead."""
    gr = config.group
    out: dict[str, Any] = {"Protocol": gr.protocol or None,
                           "ProtocolDescription": PROTOCOLS.get(gr.protocol, {}).get(
                               "description"),
                           "LeakySplit": banner(config, n_subjects)}
    if direction == "eeg2fmri":
        mapped = other_domain(gr.target_domain)
        out["TargetDomain"] = gr.target_domain
        out["ScoredDomains"] = [gr.target_domain] + (
            [mapped] if any(c.startswith(f"{mapped}_") for c in table) else [])
    else:
        out["InputDomain"] = "fluctuations"
    for title, _, df in report_tables(table, config):
        out[title] = df.replace({np.nan: None}).to_dict("records")
    return out
