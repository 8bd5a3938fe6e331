"""BIDS derivative names, the dataset description and atomic writes.

Every output path of every stage is built by :func:`build_path`, and every file lands through
:func:`atomic_path` (a hidden temporary beside the destination, renamed into place once complete),
so a killed run never leaves a half-written output under its final name.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from .._version import __version__
from ..errors import from_oserror

CODE_URL = "https://github.com/bids-eeg2fmri/bids_eeg2fmri"
PIPELINE_NAME = "bids_eeg2fmri"
BIDS_VERSION = "1.10.0"

# Order of entities in a file name: the BIDS specification's order for the raw entities we meet,
# then the derivative entities fMRIPrep writes after them.
ENTITY_ORDER = ("sub", "ses", "task", "acq", "ce", "rec", "dir", "run", "echo", "recording",
                "from", "to", "mode", "space", "res", "den", "label", "desc")
# Long names as pybids reports them.
LONG_NAMES = {"subject": "sub", "session": "ses", "task": "task", "acquisition": "acq",
              "ceagent": "ce", "reconstruction": "rec", "direction": "dir", "run": "run",
              "echo": "echo", "recording": "recording", "space": "space", "resolution": "res",
              "density": "den", "label": "label", "desc": "desc"}
SOURCE_ENTITIES = ("sub", "ses", "task", "acq", "ce", "rec", "dir", "run", "echo")
DATATYPES = ("func", "eeg", "anat", "figures")
TMP_PREFIX = ".tmp-"
_LABEL = re.compile(r"^[A-Za-z0-9]+$")


def entity_label(text: str) -> str:
    """``text`` reduced to the letters and digits a BIDS entity label may hold
    (``rnn-seq2seq`` → ``rnnseq2seq``)."""
    return re.sub(r"[^A-Za-z0-9]", "", text)


# Files that BIDS has no rule for; listed in the output's .bidsignore so the validator passes.
# The validator's derivative rules do not cover everything fMRIPrep-style outputs hold yet
# (boldref, confound and band-power time series are reported as NOT_INCLUDED). Folder patterns
# carry no trailing slash: bids-validator-deno 3 does not match "figures/" against a folder.
BIDSIGNORE = ("*_spectrogram.h5", "*_spectrogram.json", "*_eeg.fif", "*_desc-preproc_eeg.json",
              "*_desc-preproc_channels.tsv", "*_desc-preproc_events.tsv",
              "*.html", "**/figures", "models", "group", "logs", "*_xfm.*", "*_boldref.nii.gz",
              "*_boldref.json", "*_timeseries.tsv", "*_timeseries.json", "*_predictions.tsv",
             "*_predictions.json")


def parse_entities(path: str | os.PathLike) -> dict[str, str]:
    """Read the ``key-value`` entities, suffix and extension from a BIDS file name.

    Parameters
    ----------
    path
        A BIDS file path or name.

    Returns
    -------
    dict
        Short entity keys mapped to labels, plus ``suffix`` and ``extension``.
    """
    name = Path(path).name
    stem, dot, rest = name.partition(".")
    parts = stem.split("_")
    out: dict[str, str] = {}
    for part in parts[:-1]:
        key, sep, value = part.partition("-")
        if sep:
            out[key] = value
    out["suffix"] = parts[-1]
    out["extension"] = dot + rest if dot else ""
    return out


def normalise_entities(entities: Mapping[str, Any]) -> dict[str, str]:
    """Map pybids long entity names to short keys and drop the ones that are not name parts."""
    out: dict[str, str] = {}
    for key, value in entities.items():
        short = LONG_NAMES.get(key, key)
        if short in ENTITY_ORDER and value is not None:
            out[short] = str(value)
    return out


def build_path(out_dir: str | os.PathLike, source: Mapping[str, Any] | str | os.PathLike, *,
               suffix: str, extension: str, datatype: str | None = None,
               **entities: Any) -> Path:
    """Build a derivative path from the source run's entities plus derivative entities.

    Parameters
    ----------
    out_dir
        Root of the derivatives dataset.
    source
        The source file's path or its entities (short or pybids long names); only the
        raw entities (sub, ses, task, acq, ce, rec, dir, run, echo) are kept from it.
    suffix, extension
        BIDS suffix (``bold``, ``mask``, ``timeseries``…) and extension with its dot.
    datatype
        ``func``, ``eeg``, ``anat`` or ``figures``; defaults to the source's datatype from its suffix.
    **entities
        Derivative entities: ``space``, ``res``, ``desc``, ``from_``/``from``, ``to``, ``mode``…
        ``None`` values are omitted.

    Returns
    -------
    pathlib.Path
        ``out_dir/sub-XX[/ses-YY]/<datatype>/<name>``.

    Raises
    ------
    ValueError
        For a missing subject, an unknown entity or a label that is not alphanumeric.
    """
    if isinstance(source, (str, os.PathLike)):
        parsed = parse_entities(source)
        src = {k: v for k, v in parsed.items() if k in SOURCE_ENTITIES}
        datatype = datatype or _datatype_for(parsed.get("suffix", ""))
    else:
        src = {k: v for k, v in normalise_entities(source).items() if k in SOURCE_ENTITIES}
        datatype = datatype or str(source.get("datatype") or "")
    ents = dict(src)
    for key, value in entities.items():
        key = key.rstrip("_")
        if key not in ENTITY_ORDER:
            raise ValueError(f"unknown BIDS entity {key!r}")
        if value is None:
            ents.pop(key, None)
        else:
            ents[key] = str(value)
    if "sub" not in ents:
        raise ValueError("a derivative path needs a subject")
    for key, value in ents.items():
        if not _LABEL.match(value):
            raise ValueError(f"BIDS label for {key!r} must be alphanumeric, got {value!r}")
    if datatype not in DATATYPES:
        raise ValueError(f"unknown datatype {datatype!r}")
    if not extension.startswith("."):
        raise ValueError(f"extension must start with a dot, got {extension!r}")
    name = "_".join(f"{k}-{ents[k]}" for k in ENTITY_ORDER if k in ents) + f"_{suffix}{extension}"
    folder = Path(out_dir) / f"sub-{ents['sub']}"
    if "ses" in ents:
        folder = folder / f"ses-{ents['ses']}"
    return folder / datatype / name


def _datatype_for(suffix: str) -> str:
    return {"bold": "func", "boldref": "func", "sbref": "func", "eeg": "eeg", "T1w": "anat",
            "channels": "eeg", "events": "func"}.get(suffix, "")


# ----------------------------------------------------------------------------- atomic writing
@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; rename it onto ``dest`` when the block succeeds.

    The temporary is hidden and keeps the destination's full name as its tail, so writers that
    infer the format from the extension (``.nii.gz``, ``.fif``) behave as for the real name. On an
    exception the temporary is removed and ``dest`` is left as it was.

    Parameters
    ----------
    dest
        The final path.

    Yields
    ------
    pathlib.Path
        Where the caller writes the complete file.
    """
    dest = Path(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise from_oserror(exc) from None
    tmp = dest.with_name(f"{TMP_PREFIX}{secrets.token_hex(4)}-{dest.name}")
    try:
        yield tmp
        if not tmp.exists():
            raise RuntimeError(f"writer produced no file for {dest}")
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def atomic_write_bytes(dest: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``dest`` atomically and return ``dest`` as a Path.

    A ``dest`` that already holds exactly ``data`` is left untouched (a rerun changes nothing).
    """
    dest = Path(dest)
    if dest.is_file() and dest.stat().st_size == len(data) and dest.read_bytes() == data:
        return dest
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)
    return Path(dest)


def atomic_write_text(dest: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 ``text`` to ``dest`` atomically and return ``dest`` as a Path."""
    return atomic_write_bytes(dest, text.encode("utf-8"))


def write_json(dest: str | os.PathLike, obj: Mapping[str, Any]) -> Path:
    """Write a JSON sidecar atomically (indented, keys in the order given, NaN refused)."""
    return atomic_write_text(dest, json.dumps(obj, indent=2, allow_nan=False, default=_json_default)
                             + "\n")


def write_sidecar(data_path: str | os.PathLike, meta: Mapping[str, Any]) -> Path:
    """Write the JSON sidecar of a derivative data file, adding what BIDS requires from its name.

    Files with a ``res`` entity must say what the resolution means (``Resolution``); it is filled
    in from the label when the caller did not give it.

    Parameters
    ----------
    data_path
        The data file the sidecar describes.
    meta
        Sidecar fields.

    Returns
    -------
    pathlib.Path
        The sidecar path.
    """
    meta = dict(meta)
    res = parse_entities(data_path).get("res")
    if res is not None and "Resolution" not in meta:
        meta["Resolution"] = f"{res} mm isotropic voxels" if res.isdigit() else res
    return write_json(sidecar_path(data_path), meta)


def sidecar_path(path: str | os.PathLike) -> Path:
    """Return the ``.json`` sidecar path of a data file (``x.nii.gz`` → ``x.json``)."""
    path = Path(path)
    return path.with_name(path.name.split(".")[0] + ".json")


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def remove_stale_temporaries(out_dir: str | os.PathLike) -> list[Path]:
    """Delete temporaries that a killed earlier run left in ``out_dir``; return what was removed."""
    removed = []
    for tmp in Path(out_dir).rglob(f"{TMP_PREFIX}*"):
        if tmp.is_file():
            tmp.unlink()
            removed.append(tmp)
    return removed


# ------------------------------------------------------------------- dataset description
def container_info() -> dict[str, str] | None:
    """Describe the container this process runs in, from variables the image sets."""
    kind = os.environ.get("BIDS_EEG2FMRI_CONTAINER")
    if not kind:
        return None
    info = {"Type": kind}
    tag = os.environ.get("BIDS_EEG2FMRI_IMAGE")
    if tag:
        info["Tag"] = tag
    return info


def source_uri(source_file: str | os.PathLike, dataset: str = "raw") -> str:
    """``bids:<dataset>:sub-XX/[ses-YY/]<datatype>/<name>``: the BIDS URI of an input file.

    ``dataset`` names an entry of ``DatasetLinks`` (:func:`write_dataset_description`): ``raw``
    for the BIDS input, ``eeg``/``fmriprep`` for ``--eeg-derivatives``/``--fmri-derivatives``.
    The path is taken from the first ``sub-`` folder on, so no absolute path is ever written.
    """
    parts = Path(source_file).parts
    start = next((i for i, p in enumerate(parts) if p.startswith("sub-")), len(parts) - 1)
    if start == len(parts) - 1 and len(parts) > 1 and parts[-2].startswith("sub-"):
        start = len(parts) - 2
    return f"bids:{dataset}:" + "/".join(parts[start:])


def write_participants(out_dir: str | os.PathLike, bids_dir: str | os.PathLike) -> Path | None:
    """``participants.tsv`` of the derivatives: the input's (or its ``sub-*`` folders).

    Readers such as ``mne_bids.read_raw_bids`` warn without it. Every participant of the input is
    listed, so parallel participant-level jobs all write the same file.
    """
    src = Path(bids_dir) / "participants.tsv"
    if src.is_file():
        text = src.read_text()
    else:
        subs = sorted(p.name for p in Path(bids_dir).glob("sub-*") if p.is_dir())
        if not subs:
            return None
        text = "participant_id\n" + "".join(f"{s}\n" for s in subs)
    dest = Path(out_dir) / "participants.tsv"
    if not dest.is_file() or dest.read_text() != text:
        atomic_write_text(dest, text)
    return dest


def dataset_links(raw: str | os.PathLike, eeg: str | os.PathLike | None = None,
                  fmriprep: str | os.PathLike | None = None) -> dict[str, str | os.PathLike]:
    """The ``DatasetLinks`` of a run: the BIDS input and the derivative inputs that were given."""
    links: dict[str, str | os.PathLike] = {"raw": raw}
    if eeg is not None:
        links["eeg"] = eeg
    if fmriprep is not None:
        links["fmriprep"] = fmriprep
    return links


def write_dataset_description(out_dir: str | os.PathLike, source_dirs: list[str | os.PathLike],
                              *, name: str = "bids_eeg2fmri derivatives",
                              links: dict[str, str | os.PathLike] | None = None) -> Path:
    """Write ``dataset_description.json`` of the derivatives dataset.

    Parameters
    ----------
    out_dir
        Root of the derivatives dataset.
    source_dirs
        Input datasets, recorded as ``SourceDatasets`` URLs.
    name
        Dataset name.
    links
        ``DatasetLinks``: name → dataset folder, resolving the ``bids:<name>:`` URIs of the
        sidecars' ``Sources``. By default ``raw`` is the first source dataset.

    Returns
    -------
    pathlib.Path
        The written file.
    """
    generated: dict[str, Any] = {"Name": PIPELINE_NAME, "Version": __version__, "CodeURL": CODE_URL}
    container = container_info()
    if container:
        generated["Container"] = container
    desc = {
        "Name": name,
        "BIDSVersion": BIDS_VERSION,
        "DatasetType": "derivative",
        "GeneratedBy": [generated],
        "SourceDatasets": [{"URL": Path(os.path.abspath(d)).as_uri()} for d in source_dirs],
    }
    if links is None and source_dirs:
        links = {"raw": source_dirs[0]}
    if links:
        desc["DatasetLinks"] = {k: Path(os.path.abspath(v)).as_uri() for k, v in links.items()}
    out = Path(out_dir)
    write_json(out / "dataset_description.json", desc)
    if source_dirs:
        write_participants(out, source_dirs[0])
    ignore = out / ".bidsignore"
    present = set(ignore.read_text().splitlines()) if ignore.exists() else set()
    if not set(BIDSIGNORE) <= present:
        atomic_write_text(ignore, "\n".join(sorted(present | set(BIDSIGNORE))) + "\n")
    return out / "dataset_description.json"
