"""Fixture builders that rebuild public EEG-fMRI datasets' real layouts (see ``common``)."""

from . import ds002158, ds002338, ds003768

BUILDERS = {"ds003768": ds003768.build, "ds002338": ds002338.build, "ds002158": ds002158.build}
