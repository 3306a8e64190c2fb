"""Executing the chapters with papermill and rendering the book (``weldlab book``)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from queue import Empty

import yaml
from jupyter_client import AsyncKernelClient, AsyncKernelManager
from jupyter_client.channels import AsyncZMQSocketChannel
from traitlets import Type, default, observe

from ..config import RESULTS_ROOT, Config, load_preset
from .errors import BookBuildError, ChapterError
from .exercises import exercises_page
from .pages import figure_problems, portable_notebook
from .source import SOURCE_ARCHIVE, source_archive

BOOK_SOURCES = ("_config.yml", "_toc.yml", "book")
#: Seconds of each wait for a kernel message (:class:`PollingKernelManager`).
POLL_SLICE = 1.0


class _SlicedChannel(AsyncZMQSocketChannel):
    """A kernel channel whose wait for a message is a series of short polls.

    nbclient waits for a cell's reply with one zmq poll of the cell's whole timeout (or none);
    when that poll misses its wake-up, the kernel sits idle and the client waits for ever (the
    chapter 8 widget cell under papermill, jupyter/nbclient#312). Polled again every
    :data:`POLL_SLICE` seconds, a reply that arrived unnoticed is read at the next poll.
    """

    async def get_msg(self, timeout=None):
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = POLL_SLICE if deadline is None else min(POLL_SLICE, max(0.0, deadline - time.monotonic()))
            try:
                return await super().get_msg(timeout=left)
            except Empty:
                if deadline is not None and time.monotonic() >= deadline:
                    raise


class _SlicedClient(AsyncKernelClient):
    shell_channel_class = Type(_SlicedChannel)
    iopub_channel_class = Type(_SlicedChannel)


class PollingKernelManager(AsyncKernelManager):
    """The kernel manager papermill runs the chapters with.

    Its clients wait for the kernel's messages in short polls (:class:`_SlicedChannel`),
    whatever client class nbclient names.
    """

    @observe("client_class")
    def _client_class_changed(self, change):
        self.client_factory = _SlicedClient

    @default("client_factory")
    def _client_factory_default(self):
        return _SlicedClient


def repo_root(start=None) -> Path:
    """The folder holding ``_toc.yml`` (searched upwards from ``start`` or the cwd)."""
    here = Path(start or Path.cwd()).resolve()
    for p in (here, *here.parents):
        if (p / "_toc.yml").is_file() and (p / "notebooks").is_dir():
            return p
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


def resolve_parameters(preset="quick", data=None, gdxray_root=None, overrides=None, artifacts_root=None,
                       results_root=None):
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
    if results_root is not None:
        params["results_root"] = str(Path(results_root).resolve())
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


def _source_cell_number(executed, index=None, source=None):
    """1-based number of a cell in the chapter's source, with its first line.

    ``index`` is papermill's cell index in the executed copy; None: the last cell papermill
    started there (one that timed out or whose kernel died). Papermill's injected
    parameters cell is not counted. "?" if neither can be found.
    """
    import nbformat

    try:
        cells = nbformat.read(executed, as_version=4).cells
    except Exception:  # the executed copy could not be read: keep papermill's index
        cells = []
    if index is None:
        started = [i for i, c in enumerate(cells) if c.metadata.get("papermill", {}).get("start_time")]
        if not started:
            return "?"
        index, source = started[-1], cells[started[-1]].source
    injected = [i for i, c in enumerate(cells) if "injected-parameters" in c.metadata.get("tags", [])]
    if injected and index > injected[0]:
        index -= 1
    first = (source or "").strip().splitlines()
    return f"{index + 1} ({first[0][:60]!r})" if first else f"{index + 1}"


#: How many times a chapter whose cell timed out is run, each time with a new kernel. A safety
#: net: the hang seen at chapter 8's widget cell (jupyter/nbclient#312: the kernel replied in
#: 0.7 s, the client read the reply when its 900 s poll ended) is what :class:`_SlicedChannel`
#: now prevents.
TIMEOUT_ATTEMPTS = 2


def execute_chapter(notebook, output, parameters, cwd=None, cell_timeout=None, log=print):
    """Execute one chapter with papermill.

    Parameters
    ----------
    notebook, output : path
        The chapter and where its executed copy goes.
    parameters : dict
        Injected into the chapter's ``parameters`` cell.
    cwd : path, optional
        The kernel's working folder (default: the chapter's folder).
    cell_timeout : float, optional
        Seconds one cell (or the kernel's last reply) may take before the chapter fails
        with a :class:`ChapterError` (default: no limit). A chapter whose cell timed out is
        run again with a new kernel, up to :data:`TIMEOUT_ATTEMPTS` runs in all; a kernel
        that hangs every time then stops the build with the chapter named instead of
        holding it forever.
    log : callable
        Told when a chapter is run again, and of each problem its figure check found
        (:func:`weldlab.book.figure_problems`).

    Raises
    ------
    ChapterError
        With the chapter name and the failing cell's execution count.
    """
    import papermill as pm

    notebook, output = Path(notebook), Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    backend = os.environ.pop("MPLBACKEND", None)
    # The kernel inherits this process's environment: a non-interactive MPLBACKEND (Agg, as
    # headless CI sets it) would leave every figure out of the executed chapter and the book.
    # Without one, the kernel sets up its own inline backend, as on a reader's machine (naming
    # that backend here instead hangs chapter 8's widgets under papermill).
    try:
        for attempt in range(1, TIMEOUT_ATTEMPTS + 1):
            try:
                pm.execute_notebook(
                    str(notebook), str(output), parameters=parameters, kernel_name="python3",
                    progress_bar=False, cwd=str(cwd or notebook.parent), execution_timeout=cell_timeout,
                    kernel_manager_class=PollingKernelManager,
                )
                break
            except TimeoutError:  # nbclient's CellTimeoutError: the cell or its kernel hung
                if attempt == TIMEOUT_ATTEMPTS:
                    raise
                log(f"{notebook.stem}: cell {_source_cell_number(output)} timed out after {cell_timeout} s; "
                    f"running the chapter again with a new kernel ({attempt + 1} of {TIMEOUT_ATTEMPTS})")
    except pm.PapermillExecutionError as exc:
        raise ChapterError(notebook.stem, _source_cell_number(output, exc.cell_index, exc.source),
                           f"{exc.ename}: {exc.evalue}") from exc
    except Exception as exc:  # a cell timed out, the kernel died, the notebook is unreadable, ...
        message = str(exc).strip().splitlines()
        raise ChapterError(notebook.stem, _source_cell_number(output),
                           f"{type(exc).__name__}: {message[0] if message else ''}") from exc
    finally:
        if backend is not None:
            os.environ["MPLBACKEND"] = backend
    _hide_injected(output)
    for problem in figure_problems(output):
        log(f"{notebook.stem}: {problem}")
    return output


#: Marks a folder as a weldlab book build, which later builds may replace.
BUILD_MARKER = ".weldlab-book"
#: What a build writes into ``<build_dir>/<data>/<preset>``.
BUILD_ENTRIES = {BUILD_MARKER, "html", "executed", "src.partial", "executed.partial"}


def claim_build_folder(out_root, overwrite=False):
    """Make ``out_root`` a book build folder, refusing one that holds anything else.

    A build replaces ``html``, ``executed`` and ``src.partial`` in it; that is safe only
    if the folder holds nothing but a previous build's entries. Raises
    :class:`~weldlab.provenance.OutputExistsError` (before any chapter runs) otherwise.
    """
    from ..provenance import atomic_file, check_replaceable

    out_root = Path(out_root)

    def own(folder):
        names = {p.name for p in folder.iterdir()}
        return names <= BUILD_ENTRIES

    check_replaceable(out_root, own, "--build-dir folder", overwrite)
    out_root.mkdir(parents=True, exist_ok=True)
    with atomic_file(out_root / BUILD_MARKER) as tmp:  # replaces a planted link, never writes through it
        tmp.write_text("written by weldlab book; the next build replaces this folder's contents\n")


def book_gdxray_root(root):
    """The GDXray copy the chapters would find from ``<root>/notebooks``, or None.

    Passed to the chapters as an absolute path, like the artifacts folder: a chapter run
    again from the build folder (a reader re-running a downloaded chapter, or nbval) would
    find nothing with the relative fallback of :func:`~weldlab.radiographs.gdxray_root`
    (``../shared/data/gdxray``), and so read GDXray when built and not when run again.
    """
    from ..radiographs import gdxray_root

    try:
        return gdxray_root(cwd=Path(root) / "notebooks")
    except FileNotFoundError:
        return None


def run_book(preset="quick", data=None, gdxray_root=None, overrides=None, root=None,
             html=True, only=None, build_dir=None, log=print, overwrite=False, offline_js=True,
             cell_timeout=None):
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
    offline_js : bool
        Serve the widgets' JavaScript from the book (:func:`offline_assets`; needs npm the
        first time). False: load it from a CDN, so chapter 8's widgets need the internet.
    cell_timeout : float, optional
        Passed to :func:`execute_chapter` (default: no limit).

    Returns
    -------
    Path
        The published HTML folder (or the folder of executed notebooks if ``html`` is
        False).
    """
    root = repo_root(root)
    # Chapter kernels inherit this: TensorFlow's C++ start-up messages stay out of the book.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    overrides = overrides or {}
    params = resolve_parameters(preset, data, gdxray_root or book_gdxray_root(root), overrides,
                                artifacts_root=overrides.get("artifacts_root", root / "artifacts"),
                                results_root=overrides.get("results_root", root / RESULTS_ROOT))
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
        execute_chapter(root / nb, stage / nb, params, cwd=root / "notebooks", cell_timeout=cell_timeout, log=log)
        log(f"[{i}/{n}] {nb.stem} done in {time.perf_counter() - t:.1f} s "
            f"(elapsed {time.perf_counter() - t0:.1f} s)")
    if not html:
        executed = out_root / "executed"
        if executed.exists():
            shutil.rmtree(executed)
        shutil.move(str(stage / "notebooks"), executed)
        shutil.rmtree(stage, ignore_errors=True)
        return executed
    as_run = out_root / "executed.partial"  # the chapters as run, for the checks; the book shows portable copies
    if as_run.exists():
        shutil.rmtree(as_run)
    shutil.copytree(stage / "notebooks", as_run)
    for nb in chapter_list:
        portable_notebook(stage / nb)
    (stage / "book" / "exercises.md").write_text(exercises_page([stage / nb for nb in chapter_list]))
    source_archive(root, stage / "book" / SOURCE_ARCHIVE)
    if not offline_js:  # the widgets' JavaScript from a CDN, as myst-nb does by default
        config_file = stage / "_config.yml"
        config = yaml.safe_load(config_file.read_text())
        config["sphinx"]["config"].pop("nb_ipywidgets_js", None)
        config["sphinx"]["config"]["weldlab_widget_js"] = False
        config_file.write_text(yaml.safe_dump(config, sort_keys=False))
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
    shutil.move(str(as_run), executed)
    shutil.rmtree(stage, ignore_errors=True)
    log(f"book written to {published / 'index.html'} in {time.perf_counter() - t0:.1f} s")
    return published
