"""The source archive of this weldlab version that the built book offers ("Run it yourself")."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

#: The source archive the "Run it yourself" page offers (``book/run.md``), in ``book/``.
SOURCE_ARCHIVE = "weldlab-source.tar.gz"
#: Folders never put in the source archive outside a git checkout (built, installed or
#: downloaded things); in a checkout, git's own rules decide (:func:`source_files`).
NOT_SOURCE = frozenset({".git", ".venv", "artifacts", "_build", "node_modules", "__pycache__", ".pytest_cache",
                        ".ruff_cache", ".ipynb_checkpoints"})


def source_files(root):
    """The files of a weldlab source tree, sorted.

    In a git checkout: the tracked files and the untracked ones git does not ignore, as
    they are in the working tree (what the book was built from). Elsewhere (an unpacked
    archive): every file outside :data:`NOT_SOURCE`.

    Parameters
    ----------
    root : path
        The repository root.

    Returns
    -------
    list of Path
    """
    root = Path(root)
    try:
        out = subprocess.run(["git", "-C", str(root), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                             capture_output=True, check=True).stdout.decode()
        files = {root / name for name in out.split("\0") if name}
    except (OSError, subprocess.CalledProcessError):  # no git, or not a checkout
        files = {p for p in root.rglob("*") if not NOT_SOURCE & set(p.relative_to(root).parts)}
    return sorted(p for p in files if p.is_file() and not p.is_symlink())


def source_archive(root, dest):
    """Write the source tree as a ``.tar.gz`` whose bytes depend only on the files' content.

    Every file of :func:`source_files` goes under ``weldlab/`` with mtime 0, its mode
    (644, or 755 if executable) and no owner, so the same tree gives the same archive.

    Parameters
    ----------
    root : path
        The repository root.
    dest : path
        The archive to write (replaced only when complete).

    Returns
    -------
    Path
        ``dest``.
    """
    import gzip
    import io
    import tarfile

    from ..provenance import atomic_file

    root, dest = Path(root), Path(dest)
    with atomic_file(dest) as tmp, open(tmp, "wb") as raw, \
            gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in source_files(root):
            data = path.read_bytes()
            info = tarfile.TarInfo(f"weldlab/{path.relative_to(root).as_posix()}")
            info.size, info.mtime = len(data), 0
            info.mode = 0o755 if os.access(path, os.X_OK) else 0o644
            tar.addfile(info, io.BytesIO(data))
    return dest
