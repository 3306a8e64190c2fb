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


def write_json(path, obj):
    """Write JSON atomically (temporary file in the same folder, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(obj, fh, indent=2, sort_keys=True, default=_jsonable)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _jsonable(obj):
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

    The temporary name keeps ``final``'s suffix, so writers that choose a format by the
    extension (imageio, Keras) work unchanged.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.stem}.partial-{os.getpid()}{final.suffix}")
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_directory(final):
    """Build a folder under a temporary name and move it into place only on success.

    An interrupted build leaves no half-written folder at ``final`` (only a hidden
    ``.partial`` folder beside it, removed on the next attempt).
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{final.name}.partial-{os.getpid()}"
    for stale in final.parent.glob(f".{final.name}.partial-*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if final.exists():
        old = final.parent / f".{final.name}.old-{os.getpid()}"
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)
