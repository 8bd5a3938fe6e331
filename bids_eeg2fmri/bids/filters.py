"""Start-up checks of a ``--bids-filter-file`` against the dataset it will query.

pybids raises a traceback for an entity it does not know (``acquisiton``), and a valid entity
that matches nothing silently removes a modality (a paired run becomes EEG-only). Both are
caught here, before any work, as one-line usage errors (exit 64) naming the filter file.
"""

from __future__ import annotations

import difflib
import os
from typing import Any

from ..errors import UsageError
from .layout import BOLD_EXTENSIONS, EEG_FORMATS

# What each filter key narrows: the query that selects that modality without the filter.
MODALITY_QUERIES = {
    "bold": {"datatype": "func", "suffix": "bold", "extension": list(BOLD_EXTENSIONS)},
    "eeg": {"datatype": "eeg", "suffix": "eeg", "extension": list(EEG_FORMATS)},
    "t1w": {"datatype": "anat", "suffix": "T1w", "extension": list(BOLD_EXTENSIONS)}}


def check_filters(layout, filters: dict[str, dict[str, Any]], path: str | os.PathLike | None,
                  selection: dict[str, Any] | None = None) -> None:
    """Refuse filter entities the dataset does not know and filters that match none of their files.

    Parameters
    ----------
    layout
        The pybids layout of the input dataset.
    filters
        ``{"bold"|"eeg"|"t1w": {entity: value}}`` as read by
        :func:`~bids_eeg2fmri.bids.layout.load_filters`.
    path
        The filter file (named in the message).
    selection
        The other selection (``subject``, ``session``, ``task``) the filters combine with.

    Raises
    ------
    UsageError
        When a key is not an entity or metadata field of the dataset, or when a modality's files
        exist in the selection but its filter keeps none of them.
    """
    known = set(layout.get_entities())
    for modality, query in filters.items():
        for key in query:
            if key not in known:
                close = difflib.get_close_matches(key, sorted(known), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise UsageError(f"filter {modality!r}: {key!r} is not a BIDS entity of this "
                                 f"dataset{hint}", path)
    base = {k: v for k, v in (selection or {}).items() if v}
    for modality, query in filters.items():
        everything = layout.get(**base, **MODALITY_QUERIES[modality], return_type="file")
        if everything and not layout.get(**base, **MODALITY_QUERIES[modality], **query,
                                         return_type="file"):
            raise UsageError(f"filter {modality!r} {query} matches none of the {len(everything)} "
                             f"{modality} file(s) selected; fix the filter or leave it out", path)
