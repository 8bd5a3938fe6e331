"""Report figures, one module per subject: :mod:`.fmri` and :mod:`.eeg` (participant
preprocessing), :mod:`.synth` (synthesized BOLD), :mod:`.group` (group level); :mod:`.common` holds
the SVG writer and what they share.

Every function takes arrays, images or file paths plus an output path, draws with matplotlib's
Agg backend (nilearn's plotting for brain slices) and returns the path it wrote. Figures show the
data as stored in the derivatives; nothing is smoothed or idealised for display except where the
figure says so (carpet rows are detrended and z-scored, as in fMRIPrep).

Dense traces and images are rasterised inside the SVG (``rasterized=True``): an SVG with tens of
thousands of vector points per line is slow to open, while the axes and text stay vectors.
"""

# common first: it selects matplotlib's Agg backend before any figure module imports pyplot.
from .common import FD_THRESHOLD_MM, RASTER_DPI, iter_volumes, save_svg  # noqa: I001
from .eeg import plot_eeg_correction, plot_spectrogram
from .fmri import (carpet_rows, plot_carpet, plot_dummy_scans, plot_motion, plot_registration,
                   warp_to_template)
from .group import plot_cv_scores, plot_fc_matrices, plot_learning_curves, plot_region_band
from .synth import plot_region_timecourses, plot_synth_slices, region_means

__all__ = ["FD_THRESHOLD_MM", "RASTER_DPI", "carpet_rows", "iter_volumes", "plot_carpet",
           "plot_cv_scores", "plot_dummy_scans", "plot_eeg_correction", "plot_fc_matrices",
           "plot_learning_curves", "plot_motion", "plot_region_band", "plot_region_timecourses",
           "plot_registration", "plot_spectrogram", "plot_synth_slices", "region_means",
           "save_svg", "warp_to_template"]
