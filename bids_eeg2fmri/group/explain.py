"""``--attribution`` and the topographical attention map: what the final EEG→fMRI models read.

For every final EEG→fMRI model (fitted on every paired participant) this writes

- ``group/direction-eeg2fmri_model-<m>_desc-attribution_relevance.tsv`` — relevance of every
  lag × channel × frequency (:mod:`bids_eeg2fmri.analysis.attribution`) for ``--attribution-region``
  or the whole volume (with ``--attribution``);
- ``group/direction-eeg2fmri_model-<m>_desc-attention_matrix.tsv`` — for ``topo-attention``, the
  mean sparse channel-to-channel attention map over the samples (rows attend to columns; always).

and returns what the group report draws (topomaps per band, the attention heat map).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..analysis.attribution import (attention_matrix, band_channel_relevance, relevance_maps,
                                    relevance_table)
from ..bids.derivatives import atomic_write_text, entity_label
from ..errors import UsageError

log = logging.getLogger("bids_eeg2fmri")


@dataclass
class Explanations:
    """Per model: the band × channel relevance (channels × bands), the attention matrices and
    the method line of each attribution."""

    region: str
    bands: dict[str, pd.DataFrame] = field(default_factory=dict)
    methods: dict[str, str] = field(default_factory=dict)
    attention: dict[str, pd.DataFrame] = field(default_factory=dict)


def attribution_targets(region: str, data: Any) -> list[int] | None:
    """Target indices of ``--attribution-region`` (None: the whole volume); exit 64 for a name
    the EEG→fMRI targets do not have."""
    if not region:
        return None
    names = list(data.region_names or [])
    if region not in names:
        raise UsageError(f"--attribution-region {region!r} is not an EEG→fMRI target region; "
                         f"e.g. {', '.join(names[:5]) or 'none (voxel targets without atlas)'}")
    label = names.index(region) + 1
    labels = np.asarray(data.spec.labels) if data.spec.labels is not None else None
    if data.spec.target == "regions" or labels is None:
        return [names.index(region)]
    idx = np.flatnonzero(labels == label)
    if not len(idx):
        raise UsageError(f"--attribution-region {region!r} has no voxel in the model grid")
    return idx.tolist()


def _stem(out: Path, model: str, desc: str) -> Path:
    return out / "group" / f"direction-eeg2fmri_model-{entity_label(model)}_{desc}"


def explain_models(config: Any, data: Any, finals: dict[str, tuple], out: Path, *,
                   bands: dict[str, list[float]], write: bool = True) -> Explanations:
    """Attribution of every final model (with ``--attribution``) and the attention map of
    ``topo-attention`` models; writes the TSVs on the main process (``write``)."""
    from ..data.windows import index_samples

    gr = config.group
    targets = attribution_targets(gr.attribution_region, data)
    res = Explanations(gr.attribution_region or "whole volume")
    for name, (fitted, *_rest) in finals.items():
        samples = index_samples(data.runs, fitted.window)
        if hasattr(fitted.model, "attention_map"):
            att = attention_matrix(fitted, data.runs, samples)
            res.attention[name] = pd.DataFrame(att, index=list(data.spec.channels),
                                               columns=list(data.spec.channels))
            if write:
                atomic_write_text(Path(f"{_stem(out, name, 'desc-attention_matrix')}.tsv"),
                                  res.attention[name].to_csv(sep="\t", index_label="channel",
                                                             float_format="%.6g"))
        if not gr.attribution:
            continue
        log.info("attribution of %s (%s)", name, res.region)
        rel, signed, info = relevance_maps(fitted, data.runs, samples, targets=targets,
                                           steps=gr.attribution_steps)
        table = relevance_table(rel, signed, data.spec.channels, data.spec.frequencies)
        res.bands[name] = band_channel_relevance(table, bands)
        res.methods[name] = (f"{info['method']}; {info['n_samples']} samples; largest relative "
                             f"completeness gap {info['max_delta']:.2g}")
        if write:
            atomic_write_text(Path(f"{_stem(out, name, 'desc-attribution_relevance')}.tsv"),
                              table.assign(target=res.region).to_csv(
                                  sep="\t", index=False, float_format="%.6g"))
    return res
