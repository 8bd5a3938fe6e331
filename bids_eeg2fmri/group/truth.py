"""What the simulator's ground truth tells the group level's scoring (nothing for real data)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError
from .runfiles import RunFiles

log = logging.getLogger("bids_eeg2fmri")


@dataclass
class Truth:
    """The simulator's ground truth as the scoring uses it (empty for real data).

    Attributes
    ----------
    ceilings
        Per run key, the noise ceiling of each driven region (EEG→fMRI).
    groups
        The channel group of every simulated source (``<region>_<band>`` → channels); fMRI→EEG is
        also scored on the band × group cells they modulate.
    """

    ceilings: dict[str, dict[str, float]] = field(default_factory=dict)
    groups: dict[str, list[str]] | None = None


def simulation_truth(bids_dir: Path | None, files: list[RunFiles]
                     ) -> tuple[dict[str, dict[str, float]], dict[str, list[str]] | None,
                                dict[str, dict[str, Any]]]:
    """What the simulator's ground truth tells the scoring (nothing for real data).

    Returns
    -------
    ceilings
        Per run key, the noise ceiling of each driven region.
    groups
        The channel group of every simulated source (``<region>_<band>`` → channels), so that
        fMRI→EEG is also scored on the band × group cells the sources modulate; None when the
        runs disagree or there is no truth.
    truths
        Per run key, the run's ground truth (:func:`~bids_eeg2fmri.simulate.load_ground_truth`).
    """
    if bids_dir is None or not (Path(bids_dir) / "derivatives" / "simulation").is_dir():
        return {}, None, {}
    from ..simulate import load_ground_truth

    out, groups, truths = {}, [], {}
    for f in files:
        try:
            truth = load_ground_truth(bids_dir, f.subject, f.entities.get("ses"),
                                      int(f.entities.get("run", 1)),
                                      task=f.entities.get("task", "rest"))
        except (OSError, KeyError, ValueError, UserError) as exc:
            log.warning("%s: no simulator ground truth (%s)", f.key, exc)
            continue
        truths[f.key] = truth
        groups.append(truth.get("channel_groups"))
        if "noise_ceiling" not in truth:
            continue
        out[f.key] = {n: float(c) for n, c, d in zip(truth["region_names"], truth["noise_ceiling"],
                                                     truth["region_driven"]) if d and np.isfinite(c)}
    same = bool(groups) and all(g == groups[0] for g in groups) and groups[0]
    return out, ({k: list(v) for k, v in groups[0].items()} if same else None), truths


def expected_eeg(truths: dict[str, dict[str, Any]]) -> Callable[[RunFiles], np.ndarray | None]:
    """The noiseless spectrogram of a simulated run (None without truth or when it does not fit:
    the fMRI→EEG noise ceiling is then left out, the rest of the scoring is unaffected)."""
    from ..simulate.spectral_truth import expected_spectrogram

    def build(f: RunFiles) -> np.ndarray | None:
        if f.key not in truths or f.spectrogram is None:
            return None
        try:
            return expected_spectrogram(f.spectrogram, truths[f.key])
        except UserError as exc:
            log.warning("%s: no fMRI→EEG noise ceiling (%s)", f.key, exc.oneline())
            return None
    return build
