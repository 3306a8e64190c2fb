"""The book's Sphinx extension: widgets and scripts that work offline, figures that enlarge."""

from __future__ import annotations

from pathlib import Path

from .assets import offline_assets

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
