"""What both HTML reports share: the figure/section data model and the jinja2 environment."""

from __future__ import annotations

import datetime as _dt
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


LOGGER = logging.getLogger("bids_eeg2fmri.reports")
#: Framewise displacement (mm) above which the reports mark a volume (figures and run facts).
FD_THRESHOLD_MM = 0.5

# ----------------------------------------------------------------------------- data model
@dataclass
class FigureItem:
    """One figure slot of a report section.

    Attributes
    ----------
    title
        Heading.
    caption
        How to read it.
    src
        Path of the SVG relative to the HTML file, or ``None`` when not available.
    note
        Why the figure is not available (shown instead of it).
    """

    title: str
    caption: str
    src: str | None = None
    note: str | None = None


@dataclass
class RunSection:
    """Everything the report shows about one run (``<src>``)."""

    name: str
    files: dict[str, Path]
    facts: list[tuple[str, str]] = field(default_factory=list)
    figures: list[FigureItem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------- jinja
def environment():
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("bids_eeg2fmri", "reports/templates"),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["fmt"] = fmt
    return env


def fmt(value: Any, digits: int = 3) -> str:
    """Numbers with ``digits`` significant digits, n/a for missing, others as text."""
    if value is None:
        return "n/a"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return "n/a" if not math.isfinite(float(value)) else f"{float(value):.{digits}g}"
    return str(value)

def now() -> str:
    """The current UTC time, to the minute, for report footers."""
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
