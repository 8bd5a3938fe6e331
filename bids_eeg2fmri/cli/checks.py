"""Checks of the input and output folders before any work starts."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ..errors import ExitCode, UsageError, UserError


def check_bids_dir(bids_dir: Path | None) -> Path:
    """Resolve the input dataset and make sure it looks like BIDS.

    Raises
    ------
    UserError
        Exit 66 when the folder is missing, empty, unreadable or has no dataset_description.json.
    """
    if bids_dir is None:
        raise UsageError("the BIDS dataset folder is required")
    path = Path(bids_dir).expanduser().resolve()
    if not path.exists():
        raise UserError("input dataset folder does not exist", ExitCode.NO_INPUT, path)
    if not path.is_dir():
        raise UserError("input dataset is not a folder", ExitCode.NO_INPUT, path)
    try:
        empty = not any(path.iterdir())
    except PermissionError:
        raise UserError("input dataset folder is not readable", ExitCode.NO_INPUT, path) from None
    if empty:
        raise UserError("input dataset folder is empty", ExitCode.NO_INPUT, path)
    if not (path / "dataset_description.json").is_file():
        raise UserError("not a BIDS dataset: dataset_description.json is missing", ExitCode.NO_INPUT,
                        path)
    return path


def check_output_dir(output_dir: Path | None, bids_dir: Path) -> Path:
    """Resolve and create the output folder, refusing places inside the input dataset.

    Inside the input only ``<bids_dir>/derivatives/<name>`` is allowed, as the BIDS-Apps spec does.

    Raises
    ------
    UsageError
        Exit 64 for an output folder that is the input or inside it elsewhere.
    UserError
        Exit 73 when it cannot be created or written.
    """
    if output_dir is None:
        raise UsageError("the output folder is required")
    path = Path(output_dir).expanduser().resolve()
    if path == bids_dir or bids_dir in path.parents:
        rel = path.relative_to(bids_dir).parts
        if not (len(rel) == 2 and rel[0] == "derivatives"):
            raise UsageError("output folder must not be inside the input dataset, except as "
                             f"{bids_dir}/derivatives/<name>", path)
    if path in bids_dir.parents:
        raise UsageError("output folder must not contain the input dataset", path)
    ensure_writable(path)
    return path


def ensure_writable(path: Path) -> None:
    """Create ``path`` if needed and prove it is writable by creating a file in it.

    Raises
    ------
    UserError
        Exit 73 with the reason.
    """
    try:
        path.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=path).close()
    except OSError as exc:
        raise UserError(f"cannot write to the output folder: {exc.strerror or exc}",
                        ExitCode.CANT_CREATE, path) from None


def default_work_dir() -> Path:
    """Where intermediate results go when ``-w`` is not given: a folder in the system temp dir."""
    return Path(tempfile.gettempdir()) / f"bids_eeg2fmri_work_{os.getuid() if hasattr(os, 'getuid') else 0}"


def check_work_dir(work_dir: Path | None, bids_dir: Path) -> Path:
    """Resolve and create the work folder; it may not lie inside the input dataset."""
    path = Path(work_dir).expanduser().resolve() if work_dir else default_work_dir()
    if path == bids_dir or bids_dir in path.parents:
        raise UsageError("work folder must not be inside the input dataset", path)
    ensure_writable(path)
    return path


def check_input_folder(value: Path | None, option: str) -> Path | None:
    """An input folder option made absolute against the current directory, and checked.

    Raises
    ------
    UserError
        Exit 66 when it does not exist; :class:`UsageError` (exit 64) when it is not a folder.
    """
    if value is None:
        return None
    path = Path(value).expanduser().resolve()
    if not path.exists():
        raise UserError(f"{option} folder does not exist", ExitCode.NO_INPUT, path)
    if not path.is_dir():
        raise UsageError(f"{option} must be a folder", path)
    return path


def check_path_options(config) -> None:
    """Resolve every path option against the current directory and check the inputs, at start-up.

    Relative paths mean what they mean in the user's shell, never relative to the dataset; input
    folders must exist before any processing starts (exit 66), files where folders are expected
    are usage errors (exit 64).
    """
    ex = config.execution
    ee = config.eeg
    ee.eeg_derivatives = check_input_folder(ee.eeg_derivatives, "--eeg-derivatives")
    config.fmri.fmri_derivatives = check_input_folder(config.fmri.fmri_derivatives,
                                                      "--fmri-derivatives")
    if ex.bids_filter_file is not None:
        path = Path(ex.bids_filter_file).expanduser().resolve()
        if not path.is_file():
            raise UserError("--bids-filter-file does not exist", ExitCode.NO_INPUT, path)
        ex.bids_filter_file = path
    for name in ("bids_database_dir", "model_dir"):
        if getattr(ex, name) is not None:
            setattr(ex, name, Path(getattr(ex, name)).expanduser().resolve())
