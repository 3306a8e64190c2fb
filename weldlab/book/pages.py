"""The published pages and notebooks: portable (no machine paths), and checked in a headless browser."""

from __future__ import annotations

from pathlib import Path

from ..figures import FIGURE_CHECK_MARK, PAGE_WIDTH_PX

#: Chapter parameters whose values name folders on the machine that ran the chapter.
MACHINE_PATH_PARAMETERS = ("artifacts_root", "results_root", "gdxray_root")


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


def figure_problems(nb_path):
    """The figure check's findings in an executed chapter (:func:`weldlab.figures.book_style`).

    Returns
    -------
    list of str
        Each problem line the chapter's figures wrote to its error stream.
    """
    import nbformat

    nb = nbformat.read(nb_path, as_version=4)
    return [line.strip() for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
            if o.get("output_type") == "stream" and o.get("name") == "stderr"
            for line in o.get("text", "").splitlines() if FIGURE_CHECK_MARK in line]


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


#: Chromium's flags for checking pages on a machine without network or screen.
CHROMIUM_ARGS = ("--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
                 "--disable-background-networking", "--disable-component-update")

_RENDER_STATE = """() => {
    const PAGE = %d;
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
    // shown smaller than the figure check assumed (its own width, or the text column's)
    const shrunk = images.filter(i => i.naturalWidth && i.clientWidth < Math.min(i.naturalWidth, PAGE) - 2)
        .map(i => `${i.clientWidth} px of ${i.naturalWidth}`);
    const captions = images.map(i => i.closest('figure')?.querySelector('.caption-text')?.innerText.trim())
        .filter(c => c);
    const repeated = captions.filter((c, k) => captions.indexOf(c) !== k).length;
    return {maths: maths.length, raw, stray, views, widgets, wide, figures: images.length, uncaptioned, zoomable,
            pathAlt, shrunk, repeated};
}""" % PAGE_WIDTH_PX


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
        caption or with another figure's caption, without alt text (empty or a file name), that
        cannot be enlarged, or shown
        narrower than :data:`weldlab.figures.PAGE_WIDTH_PX`, the width its legibility check
        assumed).
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
                seen += [f"figure shown at {w}, narrower than the figure check assumes" for w in state["shrunk"]]
                if state["repeated"]:
                    seen.append(f"{state['repeated']} figures repeat another figure's caption word for word")
                if state["zoomable"] < state["figures"]:
                    seen.append(f"{state['figures'] - state['zoomable']} of {state['figures']} figures cannot be enlarged")
                problems += [f"{name}: {s}" for s in seen]
                counts[name] = state
                page.close()
            browser.close()
    finally:
        server.shutdown()
    return problems, counts
