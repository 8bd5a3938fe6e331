"""bids_eeg2fmri: a BIDS-App for simultaneous EEG-fMRI preprocessing and cross-modal synthesis."""

from ._version import __version__

__all__ = ["__version__"]
