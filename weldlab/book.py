"""Execute the chapters with papermill and render the book with Jupyter Book 1.x.

``weldlab book`` (and :func:`run_book`) does, in order:

1. resolve the parameters: the preset's YAML file, then ``--data``/``--gdxray-root``,
   then ``-p NAME=VALUE`` overrides, validated by :class:`weldlab.config.Config`;
2. stage the book sources (``_config.yml``, ``_toc.yml``, ``book/``) in a fresh folder;
3. execute every chapter of ``_toc.yml`` in order with papermill into that folder,
   printing ``[i/n] chapter ... elapsed``; papermill's injected-parameters cell is tagged
   ``remove-cell`` so the book hides it;
4. build the HTML with ``jupyter-book build -W`` (warnings are errors; notebooks are not
   re-executed: ``execute_notebooks: off``);
5. only if everything succeeded, move the HTML to ``_build/<data>/<preset>/html``.

A failing chapter stops the run with :class:`ChapterError`, naming the chapter and the
cell; the previously published book is left untouched.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

from .config import Config, load_preset

BOOK_SOURCES = ("_config.yml", "_toc.yml", "book")


class ChapterError(RuntimeError):
    """A chapter failed to execute."""

    def __init__(self, chapter, cell, message):
        self.chapter, self.cell = chapter, cell
        super().__init__(f"chapter {chapter} failed at cell {cell}: {message}")


class BookBuildError(RuntimeError):
    """Jupyter Book failed to render (or warned)."""


def repo_root(start=None) -> Path:
    """The folder holding ``_toc.yml`` (searched upwards from ``start`` or the cwd)."""
    here = Path(start or Path.cwd()).resolve()
    for p in (here, *here.parents):
        if (p / "_toc.yml").is_file() and (p / "notebooks").is_dir():
            return p
    pkg = Path(__file__).resolve().parent.parent
    if (pkg / "_toc.yml").is_file():
        return pkg
    raise FileNotFoundError(
        f"no _toc.yml with a notebooks/ folder above {here}: run weldlab book inside a "
        "checkout of the weldlab repository"
    )


def chapters(root=None):
    """Chapter notebooks in table-of-contents order.

    Returns
    -------
    list of Path
        Paths relative to the repository root, e.g. ``notebooks/01_radiographs.ipynb``.
    """
    root = repo_root(root)
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    files = []

    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                files.append(node["file"])
            for key in ("parts", "chapters", "sections"):
                for child in node.get(key, []) or []:
                    walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(toc)
    out = []
    for f in files:
        p = Path(f)
        if p.parts and p.parts[0] == "notebooks":
            out.append(p.with_suffix(".ipynb"))
    return out


def resolve_parameters(preset="quick", data=None, gdxray_root=None, overrides=None, artifacts_root=None):
    """Parameters passed to every chapter.

    Returns
    -------
    dict
        The preset's parameters with the given changes, validated.
    """
    params = load_preset(preset)
    params["preset"] = preset
    if data is not None:
        params["data"] = data
    if gdxray_root is not None:
        params["gdxray_root"] = str(Path(gdxray_root).resolve())
    if artifacts_root is not None:
        params["artifacts_root"] = str(Path(artifacts_root).resolve())
    for k, v in (overrides or {}).items():
        params[k] = v
    Config(**params)  # validate early: a bad parameter fails before any chapter runs
    return {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()}


def _hide_injected(nb_path):
    """Tag papermill's injected-parameters cell ``remove-cell`` in an executed notebook."""
    import nbformat

    nb = nbformat.read(nb_path, as_version=4)
    for cell in nb.cells:
        tags = cell.metadata.setdefault("tags", [])
        if "injected-parameters" in tags and "remove-cell" not in tags:
            tags.append("remove-cell")
    nbformat.write(nb, nb_path)


def _source_cell_number(executed, exc):
    """1-based number of the failing cell in the chapter's source, with its first line.

    Papermill's injected parameters cell is not counted.
    """
    import nbformat

    index = exc.cell_index
    try:
        cells = nbformat.read(executed, as_version=4).cells
        injected = [i for i, c in enumerate(cells) if "injected-parameters" in c.metadata.get("tags", [])]
        if injected and index > injected[0]:
            index -= 1
    except Exception:  # the executed copy could not be read: keep papermill's index
        pass
    first = (exc.source or "").strip().splitlines()
    return f"{index + 1} ({first[0][:60]!r})" if first else f"{index + 1}"


def execute_chapter(notebook, output, parameters, cwd=None):
    """Execute one chapter with papermill.

    Raises
    ------
    ChapterError
        With the chapter name and the failing cell's execution count.
    """
    import papermill as pm

    notebook, output = Path(notebook), Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    try:
        pm.execute_notebook(
            str(notebook), str(output), parameters=parameters, kernel_name="python3",
            progress_bar=False, cwd=str(cwd or notebook.parent),
        )
    except pm.PapermillExecutionError as exc:
        raise ChapterError(notebook.stem, _source_cell_number(output, exc), f"{exc.ename}: {exc.evalue}") from exc
    except Exception as exc:  # kernel died, notebook unreadable, ...
        raise ChapterError(notebook.stem, "?", f"{type(exc).__name__}: {exc}") from exc
    _hide_injected(output)
    return output


#: Marks a folder as a weldlab book build, which later builds may replace.
BUILD_MARKER = ".weldlab-book"
#: What a build writes into ``<build_dir>/<data>/<preset>``.
BUILD_ENTRIES = {BUILD_MARKER, "html", "executed", "src.partial"}


def claim_build_folder(out_root, overwrite=False):
    """Make ``out_root`` a book build folder, refusing one that holds anything else.

    A build replaces ``html``, ``executed`` and ``src.partial`` in it; that is safe only
    if the folder holds nothing but a previous build's entries. Raises
    :class:`~weldlab.provenance.OutputExistsError` (before any chapter runs) otherwise.
    """
    from .provenance import atomic_file, check_replaceable

    out_root = Path(out_root)

    def own(folder):
        names = {p.name for p in folder.iterdir()}
        return names <= BUILD_ENTRIES

    check_replaceable(out_root, own, "--build-dir folder", overwrite)
    out_root.mkdir(parents=True, exist_ok=True)
    with atomic_file(out_root / BUILD_MARKER) as tmp:  # replaces a planted link, never writes through it
        tmp.write_text("written by weldlab book; the next build replaces this folder's contents\n")


def run_book(preset="quick", data=None, gdxray_root=None, overrides=None, root=None,
             html=True, only=None, build_dir=None, log=print, overwrite=False):
    """Execute all chapters and render the book.

    Parameters
    ----------
    preset, data, gdxray_root, overrides
        See :func:`resolve_parameters`.
    root : path, optional
        Repository root (default: found from the cwd).
    html : bool
        Render the HTML after executing (False: execute only).
    only : list of str, optional
        Execute only chapters whose file name contains one of these strings (no HTML).
    build_dir : path, optional
        Where ``<data>/<preset>/{html,executed}`` go (default ``<root>/_build``).
    overwrite : bool
        Build into ``<build_dir>/<data>/<preset>`` even if it holds files that are not a
        weldlab build (:func:`claim_build_folder`).

    Returns
    -------
    Path
        The published HTML folder (or the folder of executed notebooks if ``html`` is
        False).
    """
    root = repo_root(root)
    # Chapter kernels inherit this: TensorFlow's C++ start-up messages stay out of the book.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    params = resolve_parameters(preset, data, gdxray_root, overrides,
                                artifacts_root=(overrides or {}).get("artifacts_root", root / "artifacts"))
    data = params["data"]
    out_root = Path(build_dir or root / "_build") / data / preset
    claim_build_folder(out_root, overwrite)
    stage = out_root / "src.partial"
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir(parents=True)
    for name in BOOK_SOURCES:
        src = root / name
        if src.is_dir():
            shutil.copytree(src, stage / name)
        elif src.is_file():
            shutil.copy2(src, stage / name)
    chapter_list = chapters(root)
    if only:
        chapter_list = [c for c in chapter_list if any(s in c.name for s in only)]
        html = False
    n = len(chapter_list)
    t0 = time.perf_counter()
    log(f"weldlab book: preset={preset} data={data}, {n} chapters")
    for i, nb in enumerate(chapter_list, 1):
        t = time.perf_counter()
        log(f"[{i}/{n}] {nb.stem} ...")
        execute_chapter(root / nb, stage / nb, params, cwd=root / "notebooks")
        log(f"[{i}/{n}] {nb.stem} done in {time.perf_counter() - t:.1f} s "
            f"(elapsed {time.perf_counter() - t0:.1f} s)")
    if not html:
        executed = out_root / "executed"
        if executed.exists():
            shutil.rmtree(executed)
        shutil.move(str(stage / "notebooks"), executed)
        shutil.rmtree(stage, ignore_errors=True)
        return executed
    log("rendering HTML with Jupyter Book (warnings are errors) ...")
    jb = Path(sys.executable).parent / "jupyter-book"
    cmd = [str(jb) if jb.exists() else "jupyter-book", "build", str(stage),
           "--path-output", str(stage), "-W", "--keep-going", "--all"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYDEVD_DISABLE_FILE_VALIDATION": "1"})
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-40:])
        raise BookBuildError(f"jupyter-book build failed (exit {proc.returncode}):\n{tail}")
    published = out_root / "html"
    # Publish: replace the previous book only now that everything succeeded.
    if published.exists():
        shutil.rmtree(published)
    shutil.move(str(stage / "_build" / "html"), published)
    executed = out_root / "executed"
    if executed.exists():
        shutil.rmtree(executed)
    shutil.move(str(stage / "notebooks"), executed)
    shutil.rmtree(stage, ignore_errors=True)
    log(f"book written to {published / 'index.html'} in {time.perf_counter() - t0:.1f} s")
    return published
