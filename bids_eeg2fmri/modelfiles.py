"""Fitted-model files that are data, never code: safetensors weights with a JSON description.

A fitted model is a nested state (dicts, lists, strings, numbers, torch tensors and numpy
arrays). :func:`write_model_file` stores every tensor and array in a safetensors file and the
rest of the state, as JSON, in that file's header metadata, with each array replaced by a
reference to its tensor. :func:`read_model_file` parses the header as JSON and the tensors as raw
buffers: nothing in the file is ever executed, unlike pickle-based ``torch.save`` files, which
can run arbitrary code when loaded (see ``docs/security.md``).

:func:`verify_files` checks the SHA-256 sums a model card lists before anything in the folder
is parsed, so a file that was changed after training is refused with one line (exit 65).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .bids.derivatives import atomic_write_bytes
from .errors import DataError

#: File name of the fitted model in model folders and cross-validation folds.
WEIGHTS_FILE = "model.safetensors"
#: Pickle-based file of versions before the safetensors format; refused, never unpickled.
LEGACY_FILE = "model.pt"
#: safetensors metadata key holding the JSON state.
META_KEY = "bids_eeg2fmri_state"
META_FORMAT = "bids_eeg2fmri-model-file-1"
_REF = "__tensor__"


def sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def pack_state(state: Any) -> tuple[Any, dict[str, torch.Tensor]]:
    """Split a nested state into JSON-compatible metadata and named tensors.

    Parameters
    ----------
    state
        Dicts with string keys, lists, tuples, strings, numbers, None, torch tensors and numpy
        arrays (numpy scalars become Python numbers; tuples become lists).

    Returns
    -------
    meta, tensors
        The state with every tensor or array replaced by ``{"__tensor__": key, "numpy": bool}``,
        and the tensors by key.

    Raises
    ------
    TypeError
        For any other type: a model state must stay plain data.
    """
    tensors: dict[str, torch.Tensor] = {}

    def walk(value: Any) -> Any:
        if isinstance(value, torch.Tensor) or isinstance(value, np.ndarray):
            is_numpy = isinstance(value, np.ndarray)
            if is_numpy and value.dtype.kind not in "biuf":
                raise TypeError(f"numpy arrays of dtype {value.dtype} cannot go into a model file")
            tensor = torch.from_numpy(np.ascontiguousarray(value)) if is_numpy else value.detach()
            key = f"t{len(tensors)}"
            tensors[key] = tensor.cpu().contiguous().clone()
            return {_REF: key, "numpy": is_numpy}
        if isinstance(value, Mapping):
            if not all(isinstance(k, str) for k in value):
                raise TypeError("model-state dicts must have string keys")
            if _REF in value:
                raise TypeError(f"{_REF!r} is reserved in model states")
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [walk(v) for v in value]
        if isinstance(value, np.generic):
            return value.item()
        if value is None or isinstance(value, (str, bool, int, float)):
            return value
        raise TypeError(f"{type(value).__name__} cannot go into a model file")

    return walk(state), tensors


def unpack_state(meta: Any, tensors: Mapping[str, torch.Tensor]) -> Any:
    """Inverse of :func:`pack_state` (references become tensors or numpy arrays again)."""
    if isinstance(meta, dict):
        if _REF in meta:
            tensor = tensors[meta[_REF]]
            return tensor.numpy() if meta.get("numpy") else tensor
        return {k: unpack_state(v, tensors) for k, v in meta.items()}
    if isinstance(meta, list):
        return [unpack_state(v, tensors) for v in meta]
    return meta


def model_file_bytes(state: Mapping[str, Any]) -> bytes:
    """The safetensors bytes of a fitted-model state (see :func:`pack_state`)."""
    from safetensors.torch import save

    meta, tensors = pack_state(state)
    # The JSON keeps non-finite floats (an infinite best loss when there was no validation set).
    header = json.dumps({"format": META_FORMAT, "state": meta}, allow_nan=True)
    return save(tensors, metadata={META_KEY: header})


def write_model_file(path: str | os.PathLike, state: Mapping[str, Any]) -> Path:
    """Write a fitted-model state atomically as safetensors + JSON; returns the path."""
    return atomic_write_bytes(path, model_file_bytes(state))


def read_model_file(path: str | os.PathLike, expected_sha256: str | None = None) -> dict[str, Any]:
    """Read a file written by :func:`write_model_file` without executing anything in it.

    Parameters
    ----------
    path
        The ``model.safetensors`` file.
    expected_sha256
        When given, the bytes are checked against it before they are parsed.

    Returns
    -------
    dict
        The state as it was written (tuples come back as lists).

    Raises
    ------
    DataError
        When the file is missing, changed, not a safetensors file or not a bids_eeg2fmri model.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load

    path = Path(path)
    if path.name == LEGACY_FILE or path.suffix == ".pt":
        raise legacy_error(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError("model file not found", path=path) from None
    except OSError as exc:
        raise DataError(f"cannot read the model file: {exc.strerror}", path=path) from None
    if expected_sha256 is not None:
        check_digest(path, hashlib.sha256(data).hexdigest(), expected_sha256)
    try:
        tensors = load(data)
        header = _header_metadata(data).get(META_KEY)
        meta = json.loads(header) if header else None
    except (SafetensorError, ValueError, UnicodeDecodeError) as exc:
        raise DataError(f"not a safetensors model file ({' '.join(str(exc).split())})",
                        path=path) from None
    if not isinstance(meta, dict) or meta.get("format") != META_FORMAT:
        raise DataError("not a bids_eeg2fmri model file (no model description in the header)",
                        path=path)
    try:
        return unpack_state(meta["state"], tensors)
    except (KeyError, TypeError) as exc:
        raise DataError(f"model file refers to a missing tensor ({exc})", path=path) from None


def _header_metadata(data: bytes) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors buffer (an 8-byte length, then a JSON header)."""
    size = int.from_bytes(data[:8], "little")
    if size <= 0 or size > len(data) - 8:
        raise ValueError("bad header length")
    return json.loads(data[8:8 + size].decode("utf-8")).get("__metadata__") or {}


def check_digest(path: Path, actual: str, expected: str) -> None:
    """Raise a one-line :class:`DataError` when a file's SHA-256 is not the one its card lists."""
    if actual.lower() != str(expected).lower():
        raise DataError(f"SHA-256 {actual[:12]}… does not match the model card's "
                        f"{str(expected)[:12]}…: the file was changed or damaged after training; "
                        "refusing to load it", path=path)


def verify_files(folder: str | os.PathLike, files: Mapping[str, str]) -> None:
    """Check that every file a model card lists exists in ``folder`` with the listed SHA-256.

    Parameters
    ----------
    folder
        The model folder.
    files
        File name → hex SHA-256 (the card's ``Files``); names must stay inside the folder.

    Raises
    ------
    DataError
        On a missing file, a name leading outside the folder, or a checksum mismatch.
    """
    folder = Path(folder)
    for name, digest in files.items():
        path = folder / name
        if Path(name).name != name:
            raise DataError(f"model card lists a file outside the folder: {name!r}", path=folder)
        if not path.is_file():
            raise DataError(f"{name} listed in the model card is missing", path=folder)
        try:
            actual = sha256(path)
        except OSError as exc:
            raise DataError(f"cannot read: {exc.strerror}", path=path) from None
        check_digest(path, actual, digest)


def legacy_error(path: str | os.PathLike) -> DataError:
    """The one-line refusal of a pickle-based ``model.pt`` of an older version."""
    return DataError(f"{LEGACY_FILE} is a pickle-based model file of an older version; it is not "
                     "loaded because unpickling can run code. Retrain the model with this version "
                     "(see docs/security.md)", path=path)


def checkpoint_safe_globals() -> list[Any]:
    """What ``torch.load(weights_only=True)`` may rebuild besides tensors: numpy arrays, scalars
    and dtypes (training checkpoints hold numpy RNG states and normaliser statistics) and torch's
    version string (in the provenance).

    These rebuild plain arrays from bytes; nothing they reference can run other code.
    """
    import numpy.dtypes
    from torch.torch_version import TorchVersion

    core = np._core.multiarray if hasattr(np, "_core") else np.core.multiarray
    return [core._reconstruct, core.scalar, np.ndarray, np.dtype, TorchVersion,
            *(getattr(numpy.dtypes, n) for n in numpy.dtypes.__all__)]


def checkpoint_error(exc: Exception) -> str:
    """A short reason for a checkpoint that ``torch.load(weights_only=True)`` refused."""
    found = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
    if found:
        return (f"it holds a Python object ({found.group(1)}) besides tensors and arrays; not "
                "loaded because unpickling it could run code")
    return " ".join(str(exc).split())[:300]
