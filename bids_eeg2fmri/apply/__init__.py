"""Applying a trained model (``--model-dir``) to participants at the participant level."""
