"""Per-participant and group HTML reports (jinja2), figures as SVG files beside them.

Layout, as in fMRIPrep::

    OUT/sub-01.html                      links to sub-01/figures/*.svg (relative paths)
    OUT/sub-01/figures/<src>_desc-<figure>_<bold|eeg>.svg
    OUT/group.html                       links to group/figures/*.svg

:mod:`.participant` writes the participant report from the files :mod:`.discovery` finds,
:mod:`.group_report` the group report; :mod:`.page` holds what both share, :mod:`.figures` the
figures.
"""

from .discovery import find_run_files
from .group_report import summarise_cv, write_group_report
from .participant import write_participant_report

__all__ = ["find_run_files", "summarise_cv", "write_group_report", "write_participant_report"]
