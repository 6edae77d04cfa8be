"""Atomic file writing.

A sweep can be interrupted at any moment (Ctrl-C, a killed job, a full disk).
Every file robnp writes for a reader to find later therefore goes through
:func:`atomic_write`: the content is written to a temporary file in the
destination directory, flushed and fsync'ed, and only then renamed over the
destination with :func:`os.replace`, which is atomic on POSIX and Windows when
both names are on the same filesystem.  A reader sees either the old file or the
complete new one, never a truncated mixture.
"""

from __future__ import annotations

import json
import math
import os
import uuid
from pathlib import Path

import numpy as np

from robnp.errors import DataError, StoreError


def _fsync_directory(directory: Path) -> None:
    # The rename itself lives in the directory entry; syncing the directory
    # makes it survive a power cut.  Not every platform can open a directory.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path, write, suffix: str = ".tmp") -> Path:
    """Call ``write(binary_file)`` on a temporary file, then move it to `path`.

    Parameters
    ----------
    path : str or os.PathLike
        Destination.  Its directory must exist.
    write : callable
        Receives the open binary file object and writes the whole content.
    suffix : str, default ".tmp"
        Ending of the temporary name; writers that infer a format from the
        file name (matplotlib) need the real extension here.

    Returns
    -------
    Path
        The destination path.

    Raises
    ------
    StoreError
        If the directory is missing or the file cannot be written.  The
        destination is left as it was and the temporary file is removed.
    """
    path = Path(path)
    directory = path.parent
    if not directory.is_dir():
        raise StoreError(f"cannot write {path}: directory {directory} does not exist")
    tmp = directory / f".{path.name}.{uuid.uuid4().hex[:12]}{suffix}"
    try:
        # O_EXCL: never reuse a name some other process holds; mode 0o666 lets
        # the umask decide permissions, as for any ordinary new file.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError):
            raise StoreError(f"cannot write {path}: {exc}") from exc
        raise
    _fsync_directory(directory)
    return path


def atomic_write_bytes(path, data: bytes) -> Path:
    """Write `data` to `path` atomically.

    Parameters
    ----------
    path : str or os.PathLike
        Destination file; its directory must exist.
    data : bytes
        The complete new content.

    Returns
    -------
    Path
        The destination path.
    """
    data = bytes(data)
    return atomic_write(path, lambda handle: handle.write(data))


def atomic_write_text(path, text: str, encoding: str = "utf-8") -> Path:
    """Write `text` to `path` atomically (UTF-8 unless told otherwise).

    Parameters
    ----------
    path : str or os.PathLike
        Destination file; its directory must exist.
    text : str
        The complete new content.
    encoding : str, default "utf-8"

    Returns
    -------
    Path
        The destination path.
    """
    return atomic_write_bytes(path, text.encode(encoding))


def _json_default(obj):
    # json knows only Python's own scalars and containers; results carry
    # NumPy scalars and occasionally small arrays.
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"object of type {type(obj).__name__} is not JSON serializable")


def to_json_text(obj, indent: int | None = 2) -> str:
    """Serialize `obj` to strict JSON text (no NaN or Infinity).

    Parameters
    ----------
    obj : object
        Dicts, lists, strings, numbers, None, and NumPy scalars or arrays.
    indent : int or None, default 2

    Returns
    -------
    str
        The JSON text, ending with a newline.

    Raises
    ------
    DataError
        If `obj` holds a non-finite float or a value JSON cannot represent.
    """
    try:
        text = json.dumps(obj, indent=indent, allow_nan=False, default=_json_default)
    except ValueError as exc:
        # allow_nan=False reports NaN/inf as ValueError without saying where;
        # finding the path costs nothing next to writing the file.
        where = _first_non_finite(obj, "$")
        raise DataError(f"cannot write JSON: non-finite number at {where or '?'}") from exc
    except TypeError as exc:
        raise DataError(f"cannot write JSON: {exc}") from exc
    return text + "\n"


def _first_non_finite(obj, where: str) -> str | None:
    if isinstance(obj, (float, np.floating)):
        return None if math.isfinite(obj) else where
    if isinstance(obj, np.ndarray):
        return None if np.all(np.isfinite(obj)) else where
    if isinstance(obj, dict):
        for key, value in obj.items():
            found = _first_non_finite(value, f"{where}.{key}")
            if found:
                return found
    elif isinstance(obj, (list, tuple)):
        for index, value in enumerate(obj):
            found = _first_non_finite(value, f"{where}[{index}]")
            if found:
                return found
    return None


def atomic_write_json(path, obj, indent: int | None = 2) -> Path:
    """Write `obj` as strict JSON to `path` atomically.

    The text is produced before the file is touched, so an object that cannot
    be serialized leaves any existing file unchanged.

    Parameters
    ----------
    path : str or os.PathLike
        Destination file; its directory must exist.
    obj : object
        See :func:`to_json_text`.
    indent : int or None, default 2

    Returns
    -------
    Path
        The destination path.

    Raises
    ------
    DataError
        If `obj` cannot be represented as strict JSON.
    StoreError
        If the file cannot be written.
    """
    return atomic_write_text(path, to_json_text(obj, indent=indent))


def atomic_savefig(fig, path, **savefig_kwargs) -> Path:
    """Save a matplotlib figure to `path` atomically.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    path : str or os.PathLike
        Destination; its extension chooses the format unless ``format`` is
        given.
    **savefig_kwargs
        Passed to :meth:`matplotlib.figure.Figure.savefig`.

    Returns
    -------
    Path
        The destination path.
    """
    path = Path(path)
    extension = path.suffix
    if "format" not in savefig_kwargs and extension:
        savefig_kwargs["format"] = extension.lstrip(".").lower()
    return atomic_write(path, lambda handle: fig.savefig(handle, **savefig_kwargs),
                         suffix=f".tmp{extension}")


def ensure_writable_dir(path) -> Path:
    """Create the output folder ``path`` if needed and prove it writable.

    Raises :class:`~robnp.errors.ConfigError` naming the folder if it exists as a
    file, cannot be created, or refuses a write. The check is an actual write of
    a throw-away file: ``os.access`` says yes to root on a read-only folder.
    """
    import tempfile

    from robnp.errors import ConfigError

    out = Path(path)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"output path {str(out)!r} exists and is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create output directory {str(out)!r}: "
                          f"{exc.strerror or exc}") from None
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-probe-", dir=out)
    except OSError as exc:
        raise ConfigError(f"output directory {str(out)!r} is not writable: "
                          f"{exc.strerror or exc}") from None
    os.close(fd)
    os.unlink(probe)
    return out


def check_output_dir(path) -> Path:
    """Refuse, before any work and without creating anything, an output folder that
    :func:`ensure_writable_dir` could not create or write to later: a file in its
    place, or a nearest existing ancestor that refuses a write."""
    from robnp.errors import ConfigError

    out = Path(path)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"output path {str(out)!r} exists and is not a directory")
    existing = out
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"cannot create output directory {str(out)!r}: "
                          f"{str(existing)!r} is not a directory")
    check_output_file(existing / ".write-probe", f"output directory {str(out)!r} (in "
                      f"{str(existing)!r})")
    return out


def check_output_file(path, what: str = "output file") -> Path:
    """Refuse, before any work, an output file that could not be written at the end.

    Raises :class:`~robnp.errors.ConfigError` naming ``path`` if it is empty, names a
    directory, or sits in a folder that does not exist or refuses a write (probed
    with a throw-away file, as :func:`ensure_writable_dir` does). Nothing is created.
    """
    import tempfile

    from robnp.errors import ConfigError

    if not str(path).strip():
        raise ConfigError(f"the {what} path must not be empty")
    out = Path(path)
    if out.is_dir():
        raise ConfigError(f"{what} {str(out)!r} is a directory")
    folder = out.parent
    if not folder.is_dir():
        raise ConfigError(f"cannot write {what} {str(out)!r}: folder {str(folder)!r} "
                          f"does not exist")
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-probe-", dir=folder)
    except OSError as exc:
        raise ConfigError(f"cannot write {what} {str(out)!r}: {exc.strerror or exc}") from None
    os.close(fd)
    os.unlink(probe)
    return out


def _unreadable_reason(exc: BaseException) -> str:
    """Why a file could not be read, without NumPy's advice to unpickle it."""
    import zipfile

    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    if isinstance(exc, zipfile.BadZipFile):
        return "not a valid zip archive"
    if isinstance(exc, EOFError):
        return "the file is empty or truncated"
    if "pickle" in str(exc):
        return "its content is neither a zip archive nor a NumPy array"
    return str(exc)


def read_npz(path, kind: str, writer: str) -> dict:
    """Every array of the ``.npz`` archive at ``path``, read without ever unpickling.

    ``kind`` names what the file should hold (``"model"``, ``"generator"``) and
    ``writer`` the function that writes it; a missing, unreadable or single-array file
    raises :class:`~robnp.errors.ModelFileError` in one line that says so, never
    NumPy's advice to allow pickles (which would run code from the file).
    """
    import zipfile

    from robnp.errors import ModelFileError

    unreadable = (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError)
    what = f"expected an .npz archive written by robnp's {writer}"
    try:
        archive = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise ModelFileError(f"{kind} file not found: {path}") from None
    except unreadable as exc:
        raise ModelFileError(f"cannot read {kind} file {path}: {what} "
                             f"({_unreadable_reason(exc)})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):  # a .npy file's array itself
        raise ModelFileError(f"{path} is not a robnp {kind}: {what}, got a single array")
    try:
        with archive:
            return dict(archive.items())
    except unreadable as exc:
        raise ModelFileError(f"cannot read {kind} file {path}: {what} "
                             f"({_unreadable_reason(exc)})") from None
