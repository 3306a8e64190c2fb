"""Provenance of results and atomic writes of artifacts."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path

from . import __version__


def git_commit(path=None):
    """Commit hash of the repository holding ``path`` (``"unknown"`` outside git).

    A ``+dirty`` suffix marks uncommitted changes (untracked, not ignored, files count).
    """
    cwd = Path(path or Path(__file__).resolve().parent)
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10
        )
        if rev.returncode != 0:
            return "unknown"
        dirty = subprocess.run(
            ["git", "status", "--porcelain"],
            cwd=cwd, capture_output=True, text=True, timeout=10,
        ).stdout.strip()
        return rev.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def provenance():
    """What produced a result: weldlab version, git commit, Python, machine."""
    return {
        "weldlab_version": __version__,
        "git_commit": git_commit(),
        "python": platform.python_version(),
        "machine": f"{platform.machine()} {os.cpu_count()} cpu {platform.system()}",
    }


def accelerators():
    """GPUs (or TPUs) visible to the active Keras backend, e.g. ``["gpu:0"]``; empty on a CPU."""
    import keras

    try:
        return [d for d in keras.distribution.list_devices() if not d.lower().startswith("cpu")]
    except Exception:  # a backend without device listing, or a broken driver: report none
        return []


def machine_description():
    """The machine a benchmark ran on: CPU model, cores, memory, accelerators, backend.

    Returns
    -------
    dict
        ``cpu`` (model name), ``cores`` (usable by this process), ``memory_gib``,
        ``accelerators`` (list), ``keras_backend``, ``keras`` and the backend's version,
        plus :func:`provenance`.
    """
    import importlib.metadata as md

    import keras

    cpu, mem = platform.processor() or platform.machine(), None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = round(int(line.split()[1]) / 2**20, 1)
                break
    except OSError:
        pass
    backend = keras.backend.backend()
    try:
        backend_version = md.version({"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}.get(backend, backend))
    except md.PackageNotFoundError:
        backend_version = "unknown"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": cpu, "cores": cores, "memory_gib": mem, "accelerators": accelerators(),
            "keras_backend": backend, "keras": keras.__version__, "backend_version": backend_version,
            **provenance()}


def _mode(base=0o666):
    """The mode a new file (``base`` 0o666) or folder (0o777) gets under the umask."""
    umask = os.umask(0)
    os.umask(umask)
    return base & ~umask


def _temporary_file(final):
    """Create an empty, unpredictably named file beside ``final``; return its path.

    ``mkstemp`` opens with ``O_CREAT | O_EXCL``, so a planted file or symbolic link at the
    name is never followed or reused. The name keeps ``final``'s suffix (writers that
    choose a format by the extension, imageio and Keras, work unchanged), and the file
    gets the mode a plain ``open`` would give, not ``mkstemp``'s private 0600.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=final.parent, prefix=f".{final.name}.", suffix=f".partial{final.suffix}")
    os.fchmod(fd, _mode())
    os.close(fd)
    return Path(tmp)


def write_json(path, obj, indent=2):
    """Write JSON atomically (temporary file in the same folder, then rename).

    ``indent=None`` writes one line: for records that hold long lists of numbers.
    """
    with atomic_file(path) as tmp, open(tmp, "w") as fh:
        json.dump(obj, fh, indent=indent, sort_keys=True, default=jsonable)
        fh.write("\n")


def jsonable(obj):
    """``json``'s ``default``: NumPy scalars and arrays as Python numbers and lists, paths as text.

    Raises
    ------
    TypeError
        For anything else, as ``json`` does.
    """
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


@contextmanager
def atomic_file(final):
    """A temporary path beside ``final``, renamed to ``final`` only if the block succeeds.

    The temporary file is created safely (:func:`_temporary_file`); an interrupted or
    failed block removes it and leaves ``final`` as it was. The rename replaces ``final``
    itself, never the target of a link at that name.
    """
    final = Path(final)
    tmp = _temporary_file(final)
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_directory(final):
    """Build a folder under a temporary name and move it into place only on success.

    An interrupted build leaves nothing at ``final``; the temporary folder (created with
    ``mkdtemp``: unpredictable name, private until filled) is removed, and one left by a
    killed process (its pid is in the name) is removed by the next build. Replacing an
    existing ``final`` is the caller's decision (:func:`check_replaceable`).
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    for stale in final.parent.glob(f".{final.name}.*.*.partial"):  # left by a killed process
        pid = stale.name[len(final.name) + 2 :].split(".", 1)[0]
        if pid.isdigit() and not _alive(int(pid)) and stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.{os.getpid()}.", suffix=".partial"))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    os.chmod(tmp, _mode(0o777))
    if final.exists() or final.is_symlink():
        old = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.", suffix=".old"))
        os.replace(final, old / "replaced")
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)


def _alive(pid):
    """True if a process ``pid`` exists (on this machine)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class OutputExistsError(ValueError):
    """An output would replace something weldlab did not write (pass ``overwrite``)."""


def check_replaceable(path, own, what, overwrite=False, flag="--overwrite"):
    """Refuse to replace ``path`` unless it is absent, empty, or weldlab's own.

    Parameters
    ----------
    path : path
        A file or folder about to be replaced.
    own : callable
        ``own(path) -> bool``: True if ``path`` holds exactly what weldlab writes there
        (for a folder: nothing but weldlab's files).
    what : str
        How to name ``path`` in the error, e.g. ``"--out"``.
    overwrite : bool
        Replace anyway (the user asked for it explicitly).

    Raises
    ------
    OutputExistsError
        Naming ``path``, an entry weldlab did not write, and the way out.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> check_replaceable(d / "new", own=lambda p: False, what="--out")  # absent: fine
    >>> (d / "thesis.pdf").write_text("years of work")
    13
    >>> check_replaceable(d, own=lambda p: False, what="--out")
    Traceback (most recent call last):
    ...
    weldlab.provenance.OutputExistsError: --out ...: exists and holds files weldlab did not write (thesis.pdf); ...
    """
    path = Path(path)
    if overwrite or not (path.exists() or path.is_symlink()):
        return
    if path.is_dir() and not path.is_symlink():
        entries = sorted(p.name for p in path.iterdir())
        if not entries or own(path):
            return
        shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
        raise OutputExistsError(
            f"{what} {path}: exists and holds files weldlab did not write ({shown}); "
            f"choose a new or empty folder, or pass {flag} to replace it")
    if own(path):
        return
    raise OutputExistsError(f"{what} {path}: exists and was not written by weldlab for this input; "
                            f"choose another name, or pass {flag} to replace it")
