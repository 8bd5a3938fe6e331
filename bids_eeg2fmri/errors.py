"""User-facing errors and the BIDS-Apps exit codes.

The command line turns a :class:`UserError` into one line on stderr and its exit code; anything
else is a bug and keeps its traceback.
"""

from __future__ import annotations

import errno
import os
from enum import IntEnum
from pathlib import Path


class ExitCode(IntEnum):
    """Exit codes of the BIDS-Apps execution specification (plus sysexits for I/O)."""

    OK = 0
    FAILURE = 1
    VALIDATION = 16
    ANALYSIS_LEVEL = 17
    NO_DATA_SELECTED = 18
    USAGE = 64
    DATA = 65
    NO_INPUT = 66
    CANT_CREATE = 73
    IO = 74


class UserError(Exception):
    """A problem with the user's input, reported as one line and an exit code.

    Parameters
    ----------
    message
        What is wrong, in words a user acts on.
    code
        The exit code to leave with.
    path
        The file or folder the problem is in; it leads the message.
    """

    def __init__(self, message: str, code: ExitCode = ExitCode.FAILURE,
                 path: str | os.PathLike | None = None) -> None:
        self.message = message
        self.code = ExitCode(code)
        self.path = None if path is None else os.fspath(path)
        super().__init__(self.oneline())

    def oneline(self) -> str:
        """Return the message as a single line, led by the path when there is one."""
        text = " ".join(str(self.message).split())
        return f"{self.path}: {text}" if self.path else text


class UsageError(UserError):
    """Bad command-line arguments or option values (exit 64)."""

    def __init__(self, message: str, path: str | os.PathLike | None = None) -> None:
        super().__init__(message, ExitCode.USAGE, path)


class DataError(UserError):
    """An input file that cannot be used as it is (exit 65)."""

    def __init__(self, message: str, path: str | os.PathLike | None = None) -> None:
        super().__init__(message, ExitCode.DATA, path)


class CantCreateError(UserError):
    """An output or work path that cannot be written: no permission, read-only (exit 73)."""

    def __init__(self, message: str, path: str | os.PathLike | None = None) -> None:
        super().__init__(message, ExitCode.CANT_CREATE, path)


class StorageError(UserError):
    """An output or work folder's disk or quota is full, or another I/O error (exit 74)."""

    def __init__(self, message: str, path: str | os.PathLike | None = None) -> None:
        super().__init__(message, ExitCode.IO, path)


NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
NO_PERMISSION = (errno.EACCES, errno.EPERM, errno.EROFS)


def describe_errno(number: int | None, filename: str | os.PathLike | None,
                   strerror: str) -> UserError:
    """The one-line error for operating-system error ``number`` on ``filename``.

    Returns
    -------
    UserError
        :class:`StorageError` (74, naming the folder) for a full disk or quota,
        :class:`CantCreateError` (73) for a permission error or a read-only file system, and
        :class:`StorageError` (74) for any other I/O error.
    """
    where = Path(os.fspath(filename)) if filename else None
    # The folder, not the file: the file is often a hidden temporary the user never sees.
    folder = where if where is None or where.is_dir() else where.parent
    if number in NO_SPACE:
        return StorageError("no space left on device", path=folder)
    if number in NO_PERMISSION:
        return CantCreateError(f"cannot write here ({strerror}); choose a writable output and "
                               "work folder", path=folder)
    return StorageError(strerror, path=where)


def from_oserror(exc: OSError) -> UserError:
    """:func:`describe_errno` for a caught :class:`OSError` (a copy's destination, when it has
    one, is the path that failed)."""
    return describe_errno(exc.errno, exc.filename2 or exc.filename, exc.strerror or str(exc))
