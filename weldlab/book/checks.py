"""The chapters' checked outputs, compared with a recorded run instead of a second execution.

A chapter marks the cells whose printed output every run of a preset must reproduce (dataset
counts, shapes, parameter counts: seeded, machine-independent results) with the comment
``# NBVAL_CHECK_OUTPUT`` (nbval's marker, which nbval's ``--nbval-lax`` mode also reads). The
tests compare the outputs papermill recorded in a build with the record
``book/results/checked_outputs.json``, written from an earlier build by
:func:`record_outputs`: each chapter runs once, and a build is checked against a run on
another day (and machine), not only against a second run beside it.

Record layout: ``{preset: {data: {chapter: [text of each marked cell's outputs, ...]}}}``.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path

import nbformat

from ..config import RESULTS_ROOT

#: The comment that marks a chapter cell whose output is checked (nbval's own marker).
MARK = "NBVAL_CHECK_OUTPUT"
#: The record's file name in the results folder.
RECORD_NAME = "checked_outputs.json"


def checked_outputs(nb_path):
    r"""The text outputs of an executed chapter's marked cells.

    Parameters
    ----------
    nb_path : path
        An executed notebook.

    Returns
    -------
    list of str
        One entry per marked code cell, in order: its stream text and the text of its
        results (Markdown when a result has it, else plain text); images are left out.

    Examples
    --------
    >>> import nbformat, tempfile, pathlib
    >>> nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("# NBVAL_CHECK_OUTPUT\nprint(2)")])
    >>> nb.cells[0].outputs = [nbformat.v4.new_output("stream", name="stdout", text="2\n")]
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "ch.ipynb"
    >>> nbformat.write(nb, path)
    >>> checked_outputs(path)
    ['2\n']
    """
    nb = nbformat.read(nb_path, as_version=4)
    return ["".join(_text(output) for output in cell.outputs)
            for cell in nb.cells if cell.cell_type == "code" and MARK in cell.source]


def _text(output):
    if output.output_type == "stream":
        return output.text
    data = output.get("data", {})
    return data.get("text/markdown") or data.get("text/plain", "")


def record_path(results_root=RESULTS_ROOT):
    """The record's path under a results folder (``book/results`` of the repository)."""
    return Path(results_root) / RECORD_NAME


def _read(path):
    return json.loads(path.read_text()) if path.is_file() else {}


def read_record(preset, data, results_root=RESULTS_ROOT):
    """The recorded outputs of one preset and data source: ``{chapter: [text, ...]}``.

    Raises
    ------
    FileNotFoundError
        No record, or none for this preset and data source (the message says how to make one).
    """
    path = record_path(results_root)
    chapters = _read(path).get(preset, {}).get(data)
    if chapters is None:
        raise FileNotFoundError(f"{path}: no checked outputs recorded for preset {preset!r} on {data!r} data; "
                                f"build the book (weldlab book --preset {preset} --data {data}) and run "
                                f"scripts/record_checked_outputs.py --preset {preset} --data {data}")
    return chapters


def differences(nb_path, expected):
    """How an executed chapter's checked outputs differ from the recorded ones.

    Parameters
    ----------
    nb_path : path
        The executed chapter.
    expected : list of str
        Its recorded outputs (:func:`read_record`).

    Returns
    -------
    list of str
        One unified diff per cell that differs (and a line if the number of marked cells
        differs); empty when the outputs reproduce.
    """
    actual = checked_outputs(nb_path)
    problems = []
    if len(actual) != len(expected):
        problems.append(f"{len(actual)} marked cells, {len(expected)} recorded")
    for i, (want, got) in enumerate(zip(expected, actual), 1):
        if want != got:
            diff = difflib.unified_diff(want.splitlines(), got.splitlines(), "recorded", "this run", lineterm="")
            problems.append(f"marked cell {i}:\n" + "\n".join(diff))
    return problems


def record_outputs(executed, preset, data, results_root=RESULTS_ROOT):
    """Record the checked outputs of a build's executed chapters for one preset and data source.

    Parameters
    ----------
    executed : path
        The folder of executed chapters (``_build/<data>/<preset>/executed``).
    preset, data : str
        What the build ran; other presets and data sources in the record are kept.
    results_root : path
        Where the record lives.

    Returns
    -------
    Path
        The record written.
    """
    notebooks = sorted(Path(executed).glob("*.ipynb"))
    if not notebooks:
        raise FileNotFoundError(f"{executed}: no executed chapters (expected the executed/ folder of a book build)")
    path = record_path(results_root)
    record = _read(path)
    record.setdefault(preset, {})[data] = {nb.stem: checked_outputs(nb) for nb in notebooks}
    path.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    return path
