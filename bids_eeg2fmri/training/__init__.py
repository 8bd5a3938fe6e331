"""Training: one learning core for both directions.

:mod:`.direction` (what differs per direction), :mod:`.core` (``fit``, ``evaluate``,
``cross_validate``), :mod:`.model` (``FittedModel``, ``load_model``), :mod:`.finetune`, :mod:`.synth`
(fMRI→EEG reconstruction of whole runs), :mod:`.trainer` (the torch loop) and :mod:`.distributed`.
"""

from .core import CVResult, Evaluation, cross_validate, evaluate, fit
from .direction import EEG2FMRI, FMRI2EEG, Direction, get_direction
from .model import FittedModel, load_model
from .options import TrainConfig

__all__ = ["CVResult", "Direction", "EEG2FMRI", "Evaluation", "FMRI2EEG", "FittedModel",
           "TrainConfig", "cross_validate", "evaluate", "fit", "get_direction", "load_model"]
