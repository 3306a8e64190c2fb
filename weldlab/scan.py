"""Scanning radiograph files in a batch: a JSON verdict and an overlay picture for each.

:func:`scan_files` is what ``weldlab scan`` runs: it reads each file, applies the detector
(:func:`weldlab.detector.scan_image`), and writes the verdict (:meth:`weldlab.verdict.Verdict.to_dict`
plus the file's provenance) and the overlay (:func:`weldlab.overlay.overlay`) together, so
one bad file never stops the others and no verdict sits beside another image's overlay.
"""

from __future__ import annotations

import hashlib
import json
import re
import textwrap
import warnings
from pathlib import Path

from .detector import scan_image
from .geometry import PATCH
from .overlay import overlay
from .provenance import atomic_file, provenance, write_json
from .radiographs import load_image
from .tiling import TILE, check_tile


def _path_hash(path):
    return hashlib.sha256(str(path).encode()).hexdigest()[:8]


def _base_name(path):
    """``dir/x.png`` -> ``x_png``: inputs that differ only by their suffix stay apart."""
    return path.stem + (f"_{path.suffix[1:]}" if path.suffix else "")


def _outputs(out_dir, base):
    return out_dir / f"{base}.json", out_dir / f"{base}_overlay.png"


def _written_for(json_file, source):
    """True if ``json_file`` is a weldlab verdict for the image file ``source``."""
    try:
        return json.loads(Path(json_file).read_text()).get("source") == str(source)
    except (OSError, ValueError, AttributeError):
        return False


def output_names(paths, out_dir, overwrite=False):
    """Choose each input's output name, unique in the batch and in ``out_dir``.

    An input ``dir/x.png`` writes ``x_png.json`` and ``x_png_overlay.png``. Where two
    different files of the batch would share that name (``a/x.png`` and ``b/x.png``), or
    ``out_dir`` already holds outputs of that name that are not this file's (another
    file's verdict, or files weldlab did not write), an 8-hex hash of the file's absolute
    path is added: ``x_png-1a2b3c4d``. A file given twice is scanned once.

    Parameters
    ----------
    paths : sequence of path
    out_dir : path
    overwrite : bool
        Take the plain name even if outputs of that name are not this file's.

    Returns
    -------
    names : list of (Path, str)
        Each distinct input with its output base name, in the order given.
    duplicates : list of Path
        Inputs given more than once (after the first).
    """
    out_dir = Path(out_dir)
    seen, unique, duplicates = set(), [], []
    for path in map(Path, paths):
        source = path.resolve()
        if source in seen:
            duplicates.append(path)
            continue
        seen.add(source)
        unique.append((path, source))
    bases = [_base_name(p) for p, _ in unique]
    shared = {b for b in bases if bases.count(b) > 1}
    names = []
    for (path, source), base in zip(unique, bases):
        if base in shared or not (overwrite or _free_for(out_dir, base, source)):
            base = f"{base}-{_path_hash(source)}"
        names.append((path, base))
    return names, duplicates


def _free_for(out_dir, base, source):
    """No outputs named ``base`` yet, or they are ``source``'s own (a rescan)."""
    json_file, png = _outputs(out_dir, base)
    if json_file.exists() or json_file.is_symlink():
        return not json_file.is_symlink() and _written_for(json_file, source)
    return not (png.exists() or png.is_symlink())


_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _error_message(exc):
    """One line, without terminal colour codes, for a verdict's ``error``."""
    text = _ANSI.sub("", str(exc)).strip()
    first = text.splitlines()[0] if text else ""
    return f"{type(exc).__name__}: {first}"


def scan_files(paths, detector, out_dir, tile=TILE, log=print, overwrite=False):
    """Scan image files, writing a JSON verdict and an overlay PNG for each.

    Outputs are named by :func:`output_names` (unique per input; nothing weldlab did not
    write for the same input is replaced unless ``overwrite``). Each input's outputs are
    written to temporary files first and then moved into place together; a rescan that
    fails replaces the old verdict by the error and removes the old overlay, so no
    verdict sits beside an overlay of another image. A file that cannot be read
    (missing, a folder, corrupt, too small or too large, unsupported) is reported in its
    JSON and in the returned list, and the other files are still scanned.

    Parameters
    ----------
    paths : sequence of path
        PNG or TIFF radiographs, 8- or 16-bit grayscale (RGB is converted with a warning).
    detector : weldlab.detector.Detector
    out_dir : path
        Created if missing; an existing file there is an error.
    tile : int
        See :func:`weldlab.tiling.reconstruct` (checked before any file is read).
    log : callable
        Receives one line per file as it starts and as it ends.

    Returns
    -------
    list of dict
        The JSON written for each distinct file: the verdict
        (:meth:`weldlab.verdict.Verdict.to_dict`: ``verdict``, ``reasons`` with their
        fields and ``text``, ``regions``, ...) with the file's ``source``, ``warnings``,
        the ``model`` and provenance; failed files have ``verdict`` "error" and an
        ``error`` message. Each names its outputs (``json``, ``overlay``).
    """
    import imageio.v3 as iio

    tile = check_tile(tile)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise NotADirectoryError(f"--out {out_dir}: is a file; expected a folder for the verdicts and overlays")
    out_dir.mkdir(parents=True, exist_ok=True)
    model = {k: detector.record.get(k) for k in ("model", "training_set", "seed", "preset", "data", "epochs",
                                                 "dataset_key", "git_commit", "weldlab_version", "source")}
    names, duplicates = output_names(paths, out_dir, overwrite)
    for path in duplicates:
        log(f"{path}: given more than once; scanned once")
    results = []
    for i, (path, base) in enumerate(names, 1):
        json_file, png = _outputs(out_dir, base)
        log(f"[{i}/{len(names)}] {path} ...")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                image = load_image(path, min_side=PATCH)

                head = f"[{i}/{len(names)}] {path}"

                def progress(done, total, head=head):
                    if total > 1 and (done == total or done % max(1, total // 10) == 0):
                        log(f"{head}: {done}/{total} tiles")

                found, maps = scan_image(detector, image, tile, name=str(path), keep_maps=False,
                                         progress=progress)
                verdict, caption = found.to_dict(), found.lines()
            except Exception as exc:  # one bad file must not stop the others
                verdict = {"image": str(path), "verdict": "error", "error": _error_message(exc)}
                maps = None
        verdict["source"] = str(path.resolve())
        verdict["warnings"] = [str(w.message) for w in caught if not issubclass(w.category, DeprecationWarning)]
        verdict["model"] = model
        verdict.update(provenance())
        verdict["json"] = str(json_file)
        if maps is not None:
            verdict["overlay"] = str(png)
            with atomic_file(png) as tmp_png:
                iio.imwrite(tmp_png, overlay(image, maps["flags"], verdict["regions"], caption=caption,
                                             input_outside=bool(found.of_kind("input"))))
                write_json(json_file, verdict)
        else:
            write_json(json_file, verdict)
            png.unlink(missing_ok=True)  # the old overlay (of this input: the name was checked) goes too
        results.append(verdict)
        if verdict["verdict"] == "error":
            log(f"[{i}/{len(names)}] {path}: ERROR {verdict['error']}")
        else:
            log(f"[{i}/{len(names)}] {path}: {verdict['verdict']} ({len(verdict['regions'])} regions, max score "
                f"{verdict['max_score']:.2f}, {verdict['seconds']} s)")
            for why in verdict["reasons"]:  # wrapped for a terminal (and a book page)
                log(textwrap.fill(why["text"], 79, initial_indent="    ", subsequent_indent="      "))
        for w in verdict["warnings"]:
            log(f"{path}: warning: {w}")
    return results
