"""Execute the chapters with papermill and render the book with Jupyter Book 1.x.

``weldlab book`` (and :func:`run_book`) does, in order:

1. resolve the parameters: the preset's YAML file, then ``--data``/``--gdxray-root``,
   then ``-p NAME=VALUE`` overrides, validated by :class:`weldlab.config.Config`;
2. stage the book sources (``_config.yml``, ``_toc.yml``, ``book/``) in a fresh folder;
3. execute every chapter of ``_toc.yml`` in order with papermill into that folder,
   printing ``[i/n] chapter ... elapsed``; papermill's injected-parameters cell is tagged
   ``remove-cell`` so the book hides it;
4. build the HTML with ``jupyter-book build -W`` (warnings are errors; notebooks are not
   re-executed: ``execute_notebooks: off``), with everything a page loads served from the
   book itself (:func:`offline_assets`): MathJax from the ``sphinx-mathjax-offline`` package,
   RequireJS and the Jupyter widgets' HTML manager from the npm registry, pinned and checked;
5. only if everything succeeded, move the HTML to ``_build/<data>/<preset>/html``.

Between 3 and 4, the Exercises page is written from the chapters (:func:`exercises_page`)
and the executed chapters the book shows and offers for download are made portable
(:func:`portable_notebook`: no machine paths, no log output); ``executed/`` keeps them as run.
The "Run it yourself" page offers the source of the weldlab version that built the book
(:func:`source_archive`, written into the staged ``book/`` folder before rendering).

:func:`check_pages` opens a built book in headless Chromium and lists what a reader offline
would see go wrong: maths left as raw LaTeX, JavaScript errors, requests that fail or leave
the machine, widgets that do not render, code or output wider than the page, and figures
without a numbered caption or a way to enlarge them; :func:`machine_paths` finds paths of the
building machine in the published pages and notebooks.

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
#: The source archive the "Run it yourself" page offers (``book/run.md``), in ``book/``.
SOURCE_ARCHIVE = "weldlab-source.tar.gz"
#: Folders never put in the source archive outside a git checkout (built, installed or
#: downloaded things); in a checkout, git's own rules decide (:func:`source_files`).
NOT_SOURCE = frozenset({".git", ".venv", "artifacts", "_build", "node_modules", "__pycache__", ".pytest_cache",
                        ".ruff_cache", ".ipynb_checkpoints"})

#: JavaScript the rendered widgets need, from the npm registry: package -> (version, the
#: tarball's sha512 as npm publishes it, files to serve from ``_static/widgets``). The
#: HTML manager's major version matches ipywidgets 8 (``ipywidgets._version.__html_manager_version__``).
WIDGET_JS = {
    "requirejs": ("2.3.7", "sha512-DouTG8T1WanGok6Qjg2SXuCMzszOo0eHeH9hDZ5Y4x8Je+9JB38HdTLT4/VA8OaUhBa0JPVHJ0pyBkM1z+pDsw==",
                  ("require.js",)),
    "@jupyter-widgets/html-manager": (
        "1.0.15", "sha512-5thBIV6ymNgmPVOHvzx+gGy8ZSKmSazhtGw4/c4xJDVzRhG9PTeQsRjF3FUTopvFi//SABeNz1yp47bCrJ3CQA==",
        ("dist/embed-amd.js", "dist/*.woff", "dist/*.woff2", "dist/*.ttf", "dist/*.eot", "dist/*.svg")),
}


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

    from .provenance import atomic_file

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


def _npm_tarball(package, version, integrity, cache):
    """The npm registry's tarball of ``package@version`` (cached), checked against ``integrity``."""
    import base64
    import hashlib

    name = f"{package.lstrip('@').replace('/', '-')}-{version}.tgz"
    tarball = Path(cache) / name
    if not tarball.is_file():
        npm = shutil.which("npm")
        if npm is None:
            raise BookBuildError(f"npm not found: it fetches {package}@{version} for the book's widgets "
                                 "(install Node.js and npm, or build with offline_js=False)")
        Path(cache).mkdir(parents=True, exist_ok=True)
        proc = subprocess.run([npm, "pack", f"{package}@{version}", "--pack-destination", str(cache)],
                              capture_output=True, text=True)
        if proc.returncode != 0 or not tarball.is_file():
            raise BookBuildError(f"npm pack {package}@{version} failed: {(proc.stderr or proc.stdout).strip()[-500:]}")
    digest = "sha512-" + base64.b64encode(hashlib.sha512(tarball.read_bytes()).digest()).decode()
    if digest != integrity:
        tarball.unlink()
        raise BookBuildError(f"{tarball}: not the published {package}@{version} (sha512 differs); removed, "
                             "build again to fetch it anew")
    return tarball


def offline_assets(static, cache=None):
    """Put the widgets' JavaScript (:data:`WIDGET_JS`) into ``static/widgets``.

    Parameters
    ----------
    static : path
        The book's ``_static`` folder (staged).
    cache : path, optional
        Where the npm tarballs are kept (default: weldlab's folder in the user cache).

    Returns
    -------
    pathlib.Path
        The ``widgets`` folder.
    """
    import fnmatch
    import tarfile

    import pooch

    cache = Path(cache or pooch.os_cache("weldlab")) / "npm"
    out = Path(static) / "widgets"
    out.mkdir(parents=True, exist_ok=True)
    for package, (version, integrity, patterns) in WIDGET_JS.items():
        with tarfile.open(_npm_tarball(package, version, integrity, cache)) as tar:
            for member in tar.getmembers():
                inner = member.name.removeprefix("package/")
                if member.isfile() and any(fnmatch.fnmatch(inner, p) for p in patterns):
                    (out / Path(inner).name).write_bytes(tar.extractfile(member).read())
    return out


# --------------------------------------------------------------------------- chapter skeleton
#: Cell tags of a chapter's exercise (a Markdown cell that starts with a ``(label)=`` target
#: and a ``## Exercise`` heading) and of its solution (a code cell, folded in the page by
#: ``hide-cell`` and executed with the chapter, so every build and test runs it).
EXERCISE_TAG, SOLUTION_TAG = "exercise", "solution"


def chapter_exercise(nb):
    """A chapter's title, exercise label and text, and solution code.

    Parameters
    ----------
    nb : nbformat.NotebookNode
        A chapter.

    Returns
    -------
    dict
        ``title`` (the ``# `` heading), ``label`` (the exercise's MyST target), ``text``
        (the exercise without its heading) and ``solution`` (the solution cell's code).

    Raises
    ------
    ValueError
        Naming what is missing: a chapter needs exactly one cell tagged ``exercise``, one
        tagged ``solution`` after it, and the solution must check its result with ``assert``.
    """
    def tagged(tag):
        return [i for i, c in enumerate(nb.cells) if tag in c.metadata.get("tags", [])]

    title = next((line[2:].strip() for c in nb.cells if c.cell_type == "markdown"
                  for line in c.source.splitlines() if line.startswith("# ")), None)
    ex, sol = tagged(EXERCISE_TAG), tagged(SOLUTION_TAG)
    if title is None or len(ex) != 1 or len(sol) != 1 or sol[0] < ex[0]:
        raise ValueError(f"chapter {title!r}: expected a title, one cell tagged {EXERCISE_TAG!r} and one "
                         f"tagged {SOLUTION_TAG!r} after it (found {len(ex)} and {len(sol)})")
    lines = nb.cells[ex[0]].source.strip().splitlines()
    if len(lines) < 3 or not (lines[0].startswith("(") and lines[0].endswith(")=")) or lines[1] != "## Exercise":
        raise ValueError(f"chapter {title!r}: the exercise cell must start with a '(label)=' line and '## Exercise'")
    solution = nb.cells[sol[0]]
    if solution.cell_type != "code" or "assert " not in solution.source:
        raise ValueError(f"chapter {title!r}: the solution must be a code cell that checks its result with assert")
    return {"title": title, "label": lines[0][1:-2], "text": "\n".join(lines[2:]).strip(),
            "solution": solution.source.strip()}


def exercises_page(notebooks):
    """The book's Exercises page, generated from the chapters' exercise cells.

    Parameters
    ----------
    notebooks : list of path
        The chapters, in book order.

    Returns
    -------
    str
        MyST Markdown: per chapter its exercise, a link to it in the chapter, and the
        solution's code folded in a dropdown.
    """
    import nbformat

    parts = ["# Exercises", "",
             "Every chapter ends with an exercise; this page collects them (`weldlab book` writes it "
             "from the chapters). Each solution sits in its chapter behind a *Show the solution* "
             "button and runs, with its checks, every time the book is built and tested.", ""]
    for nb_path in notebooks:
        ex = chapter_exercise(nbformat.read(nb_path, as_version=4))
        parts += [f"## {ex['title']}", "", ex["text"], "",
                  f"{{ref}}`The exercise in its chapter <{ex['label']}>`, with the solution's output.", "",
                  ":::{dropdown} Solution", "```python", ex["solution"], "```", ":::", ""]
    return "\n".join(parts)


#: Chapter parameters whose values name folders on the machine that ran the chapter.
MACHINE_PATH_PARAMETERS = ("artifacts_root", "gdxray_root")


def portable_notebook(nb_path):
    """Make an executed chapter fit to publish, in place: no machine paths, no logs.

    Papermill's injected-parameters cell keeps every parameter of the run except the
    folders (:data:`MACHINE_PATH_PARAMETERS`), which go back to the chapter's defaults, as
    does papermill's record in the notebook's metadata (without its input and output
    paths); the outputs written to stderr (start-up logs, warnings, progress bars) are
    dropped. A reader who downloads the notebook reruns it with the run's preset on their
    machine.
    """
    import nbformat

    nb = nbformat.read(nb_path, as_version=4)
    cells = [c for c in nb.cells if c.cell_type == "code"]
    defaults = {}
    for cell in cells:
        if "parameters" in cell.metadata.get("tags", []):
            for line in cell.source.splitlines():
                name = line.split("=", 1)[0].strip()
                if name in MACHINE_PATH_PARAMETERS:
                    defaults[name] = line.split("#", 1)[0].rstrip()
    for cell in cells:
        if "injected-parameters" in cell.metadata.get("tags", []):
            cell.source = "\n".join(
                defaults.get(line.split("=", 1)[0].strip(), line) for line in cell.source.splitlines())
        cell.outputs = [o for o in cell.outputs if not (o.output_type == "stream" and o.name == "stderr")]
    record = nb.metadata.get("papermill", {})
    for key in ("input_path", "output_path"):
        record.pop(key, None)
    for name in MACHINE_PATH_PARAMETERS:
        record.get("parameters", {}).pop(name, None)
    nbformat.write(nb, nb_path)


def machine_paths(html, paths):
    """Where a built book shows one of the building machine's folders.

    Parameters
    ----------
    html : path
        A built book's ``html`` folder.
    paths : list of path
        Folders that must not appear (the repository, the artifacts and data folders, the
        build folder, the temporary folder, the home folder).

    Returns
    -------
    list of str
        ``"<file>: <folder>"`` for every published page (``.html``) or downloadable notebook
        (``_sources/**.ipynb``) that contains one.
    """
    html = Path(html)
    needles = sorted({str(p) for p in paths if p and len(str(p)) > 1}, key=len, reverse=True)
    hits = []
    files = [*html.rglob("*.html"), *(html / "_sources").rglob("*.ipynb")]
    for f in sorted(files):
        text = f.read_text(errors="replace")
        hits += [f"{f.relative_to(html).as_posix()}: {n}" for n in needles if n in text]
    return hits


# --------------------------------------------------------------------------- Sphinx extension
# ``_config.yml`` loads this module as a Sphinx extension (``extra_extensions``). With myst-nb's
# ``nb_ipywidgets_js`` empty, the pages that show widgets get RequireJS and the widgets' HTML
# manager from the book's own ``_static/widgets`` (fetched by :func:`offline_assets` when the
# build finishes), after every other script, on those pages only. And sphinx-thebe's
# configuration script, which it adds once per reading pass (so twice: "Identifier
# 'THEBE_JS_URL' has already been declared" on every page), is not added: no page here runs
# live code (that needs a Jupyter server), so nothing uses it.

_WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
#: The widgets typeset their labels with MathJax 2's ``MathJax.Hub.Queue``; the book loads
#: MathJax 3, which has ``typesetPromise`` instead. This maps the one onto the other.
_MATHJAX2_QUEUE = """document.addEventListener("DOMContentLoaded", () => {
  if (window.MathJax && !window.MathJax.Hub) {
    window.MathJax.Hub = {Queue: (...jobs) => jobs.forEach(job => {
      if (Array.isArray(job) && job[0] === "Typeset" && window.MathJax.typesetPromise) {
        window.MathJax.typesetPromise(job[2] ? [job[2]] : undefined);
      }
    })};
  }
});"""


#: Click to enlarge: every image of a page's content opens full-window on a click, and
#: closes on a second click or Escape (no library, nothing loaded from outside).
_ZOOM = """document.addEventListener("DOMContentLoaded", () => {
  const style = document.createElement("style");
  style.textContent = `img.weldlab-zoomable {cursor: zoom-in}
    .weldlab-zoom {position: fixed; inset: 0; z-index: 2000; background: rgba(0, 0, 0, .85);
                   display: flex; align-items: center; justify-content: center; cursor: zoom-out}
    .weldlab-zoom img {max-width: 96vw; max-height: 96vh; background: white}`;
  document.head.appendChild(style);
  const close = () => document.querySelectorAll(".weldlab-zoom").forEach(z => z.remove());
  for (const img of document.querySelectorAll("main img")) {
    if (img.closest("a")) continue;
    img.classList.add("weldlab-zoomable");
    img.title = img.title || "click to enlarge";
    img.addEventListener("click", () => {
      const box = document.createElement("div");
      box.className = "weldlab-zoom";
      box.setAttribute("role", "dialog");
      const big = document.createElement("img");
      big.src = img.src;
      big.alt = img.alt;
      box.appendChild(big);
      box.addEventListener("click", close);
      document.body.appendChild(box);
    });
  }
  document.addEventListener("keydown", e => { if (e.key === "Escape") close(); });
});"""


def _widget_scripts(app, pagename, templatename, context, doctree):
    if not app.config.weldlab_widget_js or _WIDGET_VIEW not in context.get("body", ""):
        return
    assets = context["pathto"]("_static/widgets", 1)
    app.builder.add_js_file(None, priority=900, body=_MATHJAX2_QUEUE)
    app.builder.add_js_file("widgets/require.js", priority=901)
    # the HTML manager finds its fonts next to the module RequireJS loaded it as
    app.builder.add_js_file(None, priority=902,
                            body=f'require.config({{paths: {{"@jupyter-widgets/html-manager/dist": "{assets}"}}}});')
    app.builder.add_js_file("widgets/embed-amd.js", priority=903, **{"data-jupyter-widgets-cdn": assets + "/"})


def _copy_widget_js(app, exception):
    if exception is None and app.config.weldlab_widget_js and app.builder.format == "html":
        offline_assets(Path(app.outdir) / "_static")


def setup(app):
    """Sphinx extension: the book's widgets and scripts work offline, figures enlarge (see above)."""
    app.add_config_value("weldlab_widget_js", True, "html")
    for listener in list(app.events.listeners.get("env-before-read-docs", [])):
        if getattr(listener.handler, "__name__", "") == "init_thebe_core":
            app.disconnect(listener.id)
    app.add_js_file(None, body=_ZOOM)
    app.connect("html-page-context", _widget_scripts)
    app.connect("build-finished", _copy_widget_js)
    return {"parallel_read_safe": True, "parallel_write_safe": True}


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
BUILD_ENTRIES = {BUILD_MARKER, "html", "executed", "src.partial", "executed.partial"}


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
             html=True, only=None, build_dir=None, log=print, overwrite=False, offline_js=True):
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
    as_run = out_root / "executed.partial"  # the chapters as run, for nbval; the book shows portable copies
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


#: Chromium's flags for checking pages on a machine without network or screen.
CHROMIUM_ARGS = ("--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
                 "--disable-background-networking", "--disable-component-update")

_RENDER_STATE = """() => {
    const maths = [...document.querySelectorAll('span.math, div.math')];
    const raw = maths.filter(m => !m.querySelector('mjx-container')).map(m => m.textContent.slice(0, 60));
    const text = (document.querySelector('main') || document.body).innerText;
    const stray = (text.match(/\\\\\\(|\\\\\\[|\\$\\$|\\\\begin\\{/g) || []).length;
    const views = document.querySelectorAll('script[type="application/vnd.jupyter.widget-view+json"]').length;
    const widgets = document.querySelectorAll('.jupyter-widgets.widget-slider, .jupyter-widgets .widget-slider').length;
    const main = document.querySelector('main') || document.body;
    main.querySelectorAll('details').forEach(d => { d.open = true; });  // folded cells count too
    const box = e => e.tagName === 'PRE' ? e : e.parentElement;  // a table scrolls in its wrapper
    const longest = e => e.innerText.split('\\n').sort((a, b) => b.length - a.length)[0].slice(0, 70);
    const wide = [...main.querySelectorAll('pre, table')].filter(e => e.offsetParent !== null)
        .filter(e => box(e).scrollWidth > box(e).clientWidth + 2)
        .map(e => (e.closest('.cell_input') ? 'code: ' : 'output: ') + longest(e));
    const images = [...main.querySelectorAll('.cell_output img')].filter(i => !i.closest('.jupyter-widgets'));
    const uncaptioned = images.filter(i => !(i.closest('figure') && i.closest('figure').querySelector('.caption-number'))).length;
    const zoomable = images.filter(i => i.classList.contains('weldlab-zoomable')).length;
    const pathAlt = images.filter(i => !i.alt.trim() || /[\\/]|\\.(png|jpe?g|svg)$/i.test(i.alt)).length;
    return {maths: maths.length, raw, stray, views, widgets, wide, figures: images.length, uncaptioned, zoomable,
            pathAlt};
}"""


def check_pages(html, chromium="/usr/bin/chromium", timeout=30.0):
    """Open every page of a built book in headless Chromium, offline, and list the problems.

    Each page is served from ``html`` on 127.0.0.1; a request to any other host is refused
    and counted, as a reader without network would see it fail.

    Parameters
    ----------
    html : path
        A built book's ``html`` folder.
    chromium : path
        The Chromium executable (Debian's package ``chromium``).
    timeout : float
        Seconds a page may take to load and typeset.

    Returns
    -------
    problems : list of str
        One line per problem: ``"<page>: <what>"`` (raw LaTeX, a JavaScript error or
        console error, a failed or outside request, a widget view that did not render, code
        or output that scrolls sideways at 1366 px, a chapter figure without a numbered
        caption, without alt text (empty or a file name) or that cannot be enlarged).
    pages : dict
        Page -> ``{"maths", "widgets", ...}`` counts, for the caller's own checks.
    """
    import functools
    import http.server
    import threading

    from playwright.sync_api import sync_playwright

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    html = Path(html)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(html)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    pages = sorted(p.relative_to(html).as_posix() for p in html.rglob("*.html")
                   if not p.relative_to(html).parts[0].startswith("_") and p.name not in ("genindex.html", "search.html")
                   and "http-equiv=\"Refresh\"" not in p.read_text(errors="replace")[:2000])  # redirects
    problems, counts = [], {}
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(chromium), args=list(CHROMIUM_ARGS))
            for name in pages:
                page = browser.new_page(viewport={"width": 1366, "height": 900})
                seen = []
                page.on("console", lambda m, seen=seen: seen.append(f"console {m.type}: {m.text[:200]}")
                        if m.type == "error" else None)
                page.on("pageerror", lambda e, seen=seen: seen.append(f"JavaScript error: {str(e)[:200]}"))
                page.on("requestfailed", lambda r, seen=seen: seen.append(f"failed request: {r.url[:150]}")
                        if r.url.startswith(base) else None)

                def route(r, seen=seen):
                    if r.request.url.startswith(base) or r.request.url.startswith("data:"):
                        return r.continue_()
                    seen.append(f"request leaves the book: {r.request.url[:150]}")
                    return r.abort()

                page.route("**/*", route)
                page.goto(base + name, wait_until="load", timeout=timeout * 1000)
                page.evaluate("() => window.MathJax && MathJax.startup ? MathJax.startup.promise : null")
                page.wait_for_timeout(300)
                state = page.evaluate(_RENDER_STATE)
                if state["views"]:
                    try:  # the widget manager renders the embedded views after load
                        page.wait_for_function("n => document.querySelectorAll('.jupyter-widgets').length >= n",
                                               arg=state["views"], timeout=timeout * 1000)
                    except Exception:
                        seen.append(f"{state['views']} widget views did not render")
                    state = page.evaluate(_RENDER_STATE)
                if state["raw"]:
                    seen.append(f"{len(state['raw'])} formulas left as raw LaTeX, e.g. {state['raw'][0]!r}")
                if state["stray"]:
                    seen.append(f"{state['stray']} LaTeX delimiters in the text outside formulas")
                seen += [f"wider than the page ({w})" for w in state["wide"]]
                if state["uncaptioned"]:
                    seen.append(f"{state['uncaptioned']} of {state['figures']} figures without a numbered caption")
                if state["pathAlt"]:
                    seen.append(f"{state['pathAlt']} of {state['figures']} figures without alt text (empty or a file name)")
                if state["zoomable"] < state["figures"]:
                    seen.append(f"{state['figures'] - state['zoomable']} of {state['figures']} figures cannot be enlarged")
                problems += [f"{name}: {s}" for s in seen]
                counts[name] = state
                page.close()
            browser.close()
    finally:
        server.shutdown()
    return problems, counts
