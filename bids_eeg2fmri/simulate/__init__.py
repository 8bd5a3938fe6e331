"""Simulated simultaneous EEG-fMRI BIDS datasets with known ground truth.

Use :func:`simulate_dataset` to write a dataset and :func:`load_ground_truth` to read what it
was made from; ``docs/simulation.md`` describes the model, the options and every file.
"""

from .dataset import RunRecord, SimulationResult, simulate_dataset
from .params import CONTROL_REGIONS, SOURCE_CATALOGUE, SimulationParams, preset
from .sources import canonical_hrf
from .truth import load_ground_truth

__all__ = ["CONTROL_REGIONS", "SOURCE_CATALOGUE", "RunRecord", "SimulationParams",
           "SimulationResult", "canonical_hrf", "load_ground_truth", "preset",
           "simulate_dataset"]
