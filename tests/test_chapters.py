"""Every chapter executed in the quick preset, on simulated data and on GDXray.

For each data source the whole book is built as ``make book`` does (papermill, then
Jupyter Book with warnings as errors), each chapter once; the outputs of the cells marked
``# NBVAL_CHECK_OUTPUT`` (dataset counts, shapes and other seeded results) are compared
with the recorded run in ``book/results/checked_outputs.json`` (:mod:`weldlab.book.checks`).
"""

import re
import tarfile
from pathlib import Path

import nbformat
import pytest

from weldlab import book
from weldlab.config import RESULTS_ROOT

#: `pytest -m "not book"` runs everything but the chapters (minutes instead of most of an hour).
pytestmark = pytest.mark.book

REPO = Path(__file__).resolve().parent.parent
CHAPTERS = [p.stem for p in book.chapters(REPO)]
#: Seconds any one cell of the quick preset may take (the slowest takes about a minute here).
CELL_TIMEOUT = 900


@pytest.fixture(scope="module", params=["synthetic", "gdxray"])
def built_book(request, tmp_path_factory):
    data = request.param
    if data == "gdxray":
        root = request.getfixturevalue("gdxray_root")
        extra = {"gdxray_root": str(root)}
    else:
        extra = {}
    tmp = tmp_path_factory.mktemp(f"book-{data}")
    # A hung kernel fails its chapter after CELL_TIMEOUT instead of holding CI until its limit.
    html = book.run_book("quick", data=data, overrides={"artifacts_root": str(tmp / "artifacts"), **extra},
                         root=REPO, build_dir=tmp / "_build", log=lambda *a: None, cell_timeout=CELL_TIMEOUT)
    return data, html, tmp / "_build" / data / "quick" / "executed"


def test_book_renders_every_chapter(built_book):
    data, html, executed = built_book
    assert (html / "index.html").is_file()
    for name in CHAPTERS:
        page = html / "notebooks" / f"{name}.html"
        assert page.is_file(), page
        text = page.read_text()
        # every page with numbers says they are not meaningful, but for a page that shows a
        # recorded run of a stronger preset (chapter 7 when no quick run is recorded), which says so
        shown = re.search(r'Shown from a recorded run</strong>: preset <code[^>]*><span class="pre">(\w+)<', text)
        assert "Quick preset" in text or (shown and shown.group(1) != "quick"), name
        assert "<table" in text  # Markdown tables of outputs are rendered as tables
        assert "injected-parameters" not in text and 'n_train_okay = ' not in text


def test_every_figure_is_legible_on_the_page(built_book):
    # weldlab.figures.book_style checks each figure as the chapter shows it: no text under
    # 9 pt at the page's width, no overlapping tick labels or titles.
    data, html, executed = built_book
    problems = {name: book.figure_problems(executed / f"{name}.ipynb") for name in CHAPTERS}
    assert not any(problems.values()), {k: v for k, v in problems.items() if v}


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_chapter_outputs_reproduce_the_recorded_run(built_book, chapter):
    data, html, executed = built_book
    nb_path = executed / f"{chapter}.ipynb"
    outputs = book.checked_outputs(nb_path)
    assert outputs and all(outputs), "each chapter marks cells with seeded output to check"
    recorded = book.read_record("quick", data, REPO / RESULTS_ROOT)
    assert chapter in recorded, f"{chapter}: not in the record (scripts/record_checked_outputs.py)"
    problems = book.differences(nb_path, recorded[chapter])
    assert not problems, "\n".join(problems) + (
        "\nIf the change is intended, record it: scripts/record_checked_outputs.py --data " + data)


def test_pages_work_offline_in_a_headless_browser(built_book):
    """Issue 11: offline, every page typesets its maths, loads nothing from outside the
    book, logs no JavaScript error, and chapter 8's widgets render from their saved state."""
    import os
    import shutil

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("Chromium is missing (Debian package chromium; .ci/run installs it)")
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    data, html, executed = built_book
    problems, pages = book.check_pages(html, chromium=chromium)
    assert not problems, "\n".join(problems[:40])
    assert sum(p["maths"] for p in pages.values()) >= 20  # the formulas were there to typeset
    # the figures were there to check (a chapter kernel under CI's MPLBACKEND=Agg drew none)
    assert sum(p["figures"] for p in pages.values()) >= 30, {k: p["figures"] for k, p in pages.items()}
    explorer = pages["notebooks/08_explore_thresholds.html"]
    assert explorer["views"] >= 1 and explorer["widgets"] >= 2, explorer  # the two threshold sliders


def test_published_book_shows_no_machine_paths_and_collects_the_exercises(built_book, request):
    """Issue 11: no folder of the building machine in any page or downloadable notebook;
    the Exercises page is built from the chapters' exercises."""
    data, html, executed = built_book
    folders = [str(REPO), str(html.parents[2])]  # the repository and the test's build folder
    if data == "gdxray":
        folders.append(str(request.getfixturevalue("gdxray_root")))
    assert book.machine_paths(html, folders) == []
    # Issue 24: "Run it yourself" offers the source this book was built from, no placeholder
    archives = sorted((html / "_downloads").rglob(book.SOURCE_ARCHIVE))
    assert len(archives) == 1
    run_page = (html / "book" / "run.html").read_text()
    assert archives[0].relative_to(html).as_posix() in run_page and "<the weldlab repository>" not in run_page
    with tarfile.open(archives[0]) as tar:
        assert {"weldlab/Makefile", "weldlab/pyproject.toml", "weldlab/book/run.md"} <= set(tar.getnames())
    page = (html / "book" / "exercises.html").read_text()
    assert page.count("Solution") >= len(CHAPTERS)
    for name in CHAPTERS:
        assert f"notebooks/{name}.html#exercise-" in page, name  # links to the exercise in its chapter
    for name in CHAPTERS:  # the downloads keep the run's parameters (the preset's), not its folders
        nb = nbformat.read(html / "_sources" / "notebooks" / f"{name}.ipynb", as_version=4)
        injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
        assert len(injected) == 1 and 'preset = "quick"' in injected[0].source
        assert not any(o.get("name") == "stderr" for c in nb.cells if c.cell_type == "code" for o in c.outputs)
