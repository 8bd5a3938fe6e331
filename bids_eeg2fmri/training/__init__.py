"""Training: one trainer, cross-validation and the public ``fit``/``evaluate`` API."""

from .api import Evaluation, FittedModel, evaluate, fit, load_model
from .crossval import CVResult, cross_validate
from .trainer import TrainConfig

__all__ = ["CVResult", "Evaluation", "FittedModel", "TrainConfig", "cross_validate", "evaluate",
           "fit", "load_model"]
