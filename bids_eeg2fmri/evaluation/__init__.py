"""Evaluation as the field reports it: metric domains, brain-aware image metrics, baselines in
every domain, the seed papers' protocols and their reported numbers (see ``docs/evaluation.md``)."""
