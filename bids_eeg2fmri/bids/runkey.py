"""The one key that names a run at both levels and pairs its BOLD with its EEG.

A BOLD run and the EEG recorded with it share subject, session, task, acquisition and run; the
entities only one side carries (``dir``, ``rec``, ``echo``, ``ce`` of the BOLD) do not take part,
so the participant level (raw files, pybids' long entity names) and the group level (derivative
files, short names) pair the same runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: (short, long) names of the pairing entities, in BIDS order.
RUN_KEY_ENTITIES = (("sub", "subject"), ("ses", "session"), ("task", "task"),
                    ("acq", "acquisition"), ("run", "run"))


def run_entities(entities: Mapping[str, Any]) -> dict[str, str]:
    """The pairing entities of ``entities`` (short or pybids long names) under their short names."""
    out = {}
    for short, long in RUN_KEY_ENTITIES:
        value = entities.get(short, entities.get(long))
        if value is not None and str(value) != "":
            out[short] = str(value)
    return out


def run_key(entities: Mapping[str, Any]) -> str:
    """``sub-01_ses-1_task-rest_acq-x_run-1``: the run's pairing entities as a BIDS prefix."""
    return "_".join(f"{k}-{v}" for k, v in run_entities(entities).items())
