"""The nipype node that puts a finished file into the derivatives dataset under its BIDS name."""

from __future__ import annotations

import filecmp
import shutil
from pathlib import Path

from nipype.interfaces.base import (BaseInterfaceInputSpec, File, SimpleInterface, TraitedSpec,
                                    traits)

from ..bids.derivatives import atomic_path, build_path, write_sidecar


def save_derivative(in_file: str | Path, *, out_dir: str | Path, source_file: str | Path, suffix: str,
                    extension: str | None = None, datatype: str | None = None,
                    entities: dict | None = None, metadata: dict | None = None) -> Path:
    """Copy ``in_file`` atomically to its derivative path; write its sidecar when metadata is given.

    A destination that already holds the same bytes is not rewritten; a missing or different one
    is.

    Parameters
    ----------
    in_file
        The finished file (usually in the work dir).
    out_dir
        Root of the derivatives dataset.
    source_file
        The raw input it derives from; its entities lead the name.
    suffix, extension
        BIDS suffix and extension; the extension defaults to ``in_file``'s.
    datatype
        ``func``/``eeg``/…; defaults from the source's suffix.
    entities
        Derivative entities (``space``, ``res``, ``desc``, ``from_``, ``to``, ``mode``).
    metadata
        Sidecar fields; ``None`` writes no sidecar.

    Returns
    -------
    pathlib.Path
        The derivative's path.
    """
    in_file = Path(in_file)
    if extension is None:
        name = in_file.name
        extension = name[name.index("."):] if "." in name else ""
    dest = build_path(out_dir, source_file, suffix=suffix, extension=extension, datatype=datatype,
                      **(entities or {}))
    # An identical file is left alone, so a rerun keeps its time stamp and hard links.
    if not (dest.is_file() and filecmp.cmp(in_file, dest, shallow=False)):
        with atomic_path(dest) as tmp:
            shutil.copyfile(in_file, tmp)
    if metadata is not None:
        write_sidecar(dest, metadata)
    return dest


class _SaveDerivativeInput(BaseInterfaceInputSpec):
    in_file = File(exists=True, mandatory=True, desc="finished file to save")
    out_dir = traits.Directory(mandatory=True, desc="derivatives dataset root")
    source_file = File(mandatory=True, desc="raw input file the output derives from")
    suffix = traits.Str(mandatory=True)
    extension = traits.Either(None, traits.Str, default=None, usedefault=True)
    datatype = traits.Either(None, traits.Str, default=None, usedefault=True)
    entities = traits.Dict(traits.Str, traits.Any, value={}, usedefault=True)
    metadata = traits.Either(None, traits.Dict(traits.Str, traits.Any), default=None, usedefault=True)


class _SaveDerivativeOutput(TraitedSpec):
    out_file = File(exists=True, desc="the file in the derivatives dataset")


class SaveDerivative(SimpleInterface):
    """Save a file into the derivatives dataset (see :func:`save_derivative`)."""

    input_spec = _SaveDerivativeInput
    output_spec = _SaveDerivativeOutput
    # Run on every execution, cached or not: the output folder may have been cleared or edited
    # since the work dir cached this node, and the outputs must always match the work dir.
    _always_run = True

    def _run_interface(self, runtime):
        i = self.inputs
        self._results["out_file"] = str(save_derivative(
            i.in_file, out_dir=i.out_dir, source_file=i.source_file, suffix=i.suffix,
            extension=i.extension, datatype=i.datatype, entities=dict(i.entities),
            metadata=None if i.metadata is None else dict(i.metadata)))
        return runtime
