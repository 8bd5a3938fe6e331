"""The nipype node that files the cleaned EEG as a BIDS EEG derivative (:mod:`eeg.bidsexport`)."""

from __future__ import annotations

import json
from pathlib import Path

from nipype.interfaces.base import (BaseInterfaceInputSpec, File, SimpleInterface, TraitedSpec,
                                    traits)

from ..bids.derivatives import build_path, write_sidecar
from ..eeg.bidsexport import EXTENSIONS, FORMATS


class _SavePreprocInput(BaseInterfaceInputSpec):
    in_fif = File(exists=True, mandatory=True, desc="the cleaned EEG (work dir)")
    report = File(exists=True, mandatory=True, desc="CleanEEG's report (filters, bad channels)")
    out_dir = traits.Directory(mandatory=True, desc="derivatives dataset root")
    source_file = File(mandatory=True, desc="raw EEG file the output derives from")
    metadata = traits.Dict(traits.Str, traits.Any, mandatory=True, desc="sidecar fields")
    first_volume = traits.Int(0, usedefault=True, desc="BOLD volume of the first onset")
    output_format = traits.Enum(*FORMATS, usedefault=True)


class _SavePreprocOutput(TraitedSpec):
    out_file = File(exists=True, desc="desc-preproc_eeg.vhdr (or .fif)")


class SavePreprocEEG(SimpleInterface):
    """Write ``desc-preproc_eeg`` with ``channels.tsv``, ``events.tsv`` and its sidecar."""

    input_spec = _SavePreprocInput
    output_spec = _SavePreprocOutput
    # Like SaveDerivative: runs on every execution, so a cleared or edited output folder is
    # filled again from the work dir (identical files are left untouched).
    _always_run = True

    def _run_interface(self, runtime):
        import mne

        from ..eeg.bidsexport import write_preproc_eeg
        from ..eeg.pipeline import volume_onsets_from_raw

        i = self.inputs
        raw = mne.io.read_raw_fif(i.in_fif, preload=True, verbose="error")
        dest = build_path(i.out_dir, i.source_file, suffix="eeg",
                          extension=EXTENSIONS[i.output_format], datatype="eeg", desc="preproc")
        report = json.loads(Path(i.report).read_text())
        dest, fields = write_preproc_eeg(raw, dest, report, volume_onsets_from_raw(raw),
                                         i.first_volume)
        write_sidecar(dest, {**dict(i.metadata), **fields})
        self._results["out_file"] = str(dest)
        return runtime
