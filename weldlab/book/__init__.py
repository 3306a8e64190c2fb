"""The book's machinery: execute the chapters with papermill, render them with Jupyter Book 1.x.

Nothing in weldlab's core imports this package; ``weldlab book`` and the tests do. Its modules:
:mod:`~weldlab.book.runner` (the build), :mod:`~weldlab.book.exercises`,
:mod:`~weldlab.book.source` (the source archive), :mod:`~weldlab.book.assets` (the widgets'
JavaScript), :mod:`~weldlab.book.pages` (portable notebooks, the browser check),
:mod:`~weldlab.book.sphinx` (the Sphinx extension ``_config.yml`` loads),
:mod:`~weldlab.book.checks` (the chapters' checked outputs against a recorded run) and
:mod:`~weldlab.book.errors`.

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

from .assets import WIDGET_JS, offline_assets
from .checks import MARK, checked_outputs, differences, read_record, record_outputs
from .errors import BookBuildError, ChapterError
from .exercises import EXERCISE_TAG, SOLUTION_TAG, chapter_exercise, exercises_page
from .pages import (CHROMIUM_ARGS, MACHINE_PATH_PARAMETERS, check_pages, figure_problems, machine_paths,
                    portable_notebook)
from .runner import (BOOK_SOURCES, BUILD_ENTRIES, BUILD_MARKER, TIMEOUT_ATTEMPTS, book_gdxray_root,
                     chapters, claim_build_folder, execute_chapter, repo_root, resolve_parameters, run_book)
from .source import NOT_SOURCE, SOURCE_ARCHIVE, source_archive, source_files

__all__ = ["BOOK_SOURCES", "BUILD_ENTRIES", "BUILD_MARKER", "CHROMIUM_ARGS", "EXERCISE_TAG", "MACHINE_PATH_PARAMETERS",
           "MARK", "NOT_SOURCE", "SOLUTION_TAG", "SOURCE_ARCHIVE", "TIMEOUT_ATTEMPTS", "WIDGET_JS", "BookBuildError",
           "ChapterError", "book_gdxray_root", "chapter_exercise", "chapters", "check_pages", "checked_outputs",
           "claim_build_folder", "differences", "execute_chapter", "exercises_page", "figure_problems", "machine_paths",
           "offline_assets", "portable_notebook", "read_record", "record_outputs", "repo_root", "resolve_parameters",
           "run_book", "source_archive", "source_files"]
