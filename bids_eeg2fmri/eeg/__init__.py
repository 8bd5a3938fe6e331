"""eeg subpackage."""
