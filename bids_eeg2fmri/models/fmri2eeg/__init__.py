"""fMRI→EEG models; importing this package registers them (direction ``fmri2eeg``)."""

from . import ridge, rnn_seq2seq  # noqa: F401  (registers)
