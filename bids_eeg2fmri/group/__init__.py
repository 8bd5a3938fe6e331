"""The group level: participant derivatives → paired samples → cross-validated and final models."""
