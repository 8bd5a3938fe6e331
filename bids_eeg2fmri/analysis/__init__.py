"""Analyses on trained models: the single-region (Figure 4) analysis of the fMRI→EEG direction."""
