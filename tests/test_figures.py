"""The figure check: what a reader cannot read on the book's page is found, and reported."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import nbformat  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from weldlab import figures as F  # noqa: E402


@pytest.fixture(autouse=True)
def _book_style():
    with plt.style.context("weldlab.style"):
        yield
    plt.close("all")


def test_text_size_on_the_page_follows_the_width_the_page_shows():
    fig, ax = plt.subplots(figsize=(F.MAX_WIDTH_IN, 3))
    ax.plot([0, 1], [0, 1])
    ax.set_title("title")
    assert F.legibility_problems(fig) == []
    # The same figure as an image twice as wide (what the inline backend saved) is shown at
    # half the scale: its 11 pt ticks measure under 9 pt.
    problems = F.legibility_problems(fig, image_width_px=2 * F.MAX_WIDTH_IN * fig.dpi)
    assert problems and all("pt on the page" in p for p in problems)
    # A narrow figure is shown at its own size: small text stays small.
    small, ax = plt.subplots(figsize=(4, 3))
    ax.set_xlabel("tiny", fontsize=6)
    assert F.legibility_problems(small) == ["text 'tiny' is 6.2 pt on the page (at least 9 pt)"]


def test_overlapping_labels_and_titles_are_found():
    fig, ax = plt.subplots(figsize=(3, 3))
    ax.set_xticks(range(4), ["a long label"] * 4)
    assert F.legibility_problems(fig) == ["tick labels 'a long label' and 'a long label' overlap"]
    fig, ax = plt.subplots(figsize=(3, 3))
    ax.set_xticks(range(4), ["a long label"] * 4, rotation=90)  # upright labels one line apart
    assert F.legibility_problems(fig) == []
    fig, ax = plt.subplots(figsize=(3, 3))
    ax.set_xticks(range(12), ["a long label"] * 12, rotation=30, ha="right")  # slanted, too close
    assert F.legibility_problems(fig) == ["tick labels 'a long label' and 'a long label' overlap"]
    fig, axes = plt.subplots(1, 2, figsize=(4, 2))
    for ax in axes:
        ax.set_title("a title far wider than its panel")
    assert "overlap" in F.legibility_problems(fig)[-1]


def test_log_axis_labels_few_ticks_on_a_long_axis():
    fig, ax = plt.subplots(figsize=(2.5, 2.5))
    ax.plot([1e-4, 1e-1], [1, 2])
    F.log_axis(ax)
    fig.draw_without_rendering()
    shown = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    assert shown and all(float(s) in (1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0) for s in shown)
    assert F.legibility_problems(fig) == []


def test_residual_panels_draws_a_row_per_patch():
    rng = np.random.default_rng(0)
    patches, residuals = rng.random((2, 192, 192)), 0.01 * rng.standard_normal((2, 156, 156))
    fig = F.residual_panels(patches, residuals, {"t_mean": 0.01, "t_std": 0.02}, titles=["one", "two"])
    assert len(fig.subfigs) == 2 and [s._suptitle.get_text() for s in fig.subfigs] == ["one", "two"]
    assert sum(len(s.axes) for s in fig.subfigs) == 2 * 5 + 2 * 4  # five panels and four colour bars a row
    assert F.legibility_problems(fig) == []
    assert len(F.residual_panels(patches[0], residuals[0], {"t_mean": 0.01, "t_std": 0.02}).subfigs) == 1


def test_show_first_titles_the_first_patch_of_each_set():
    sets = {"iqi_wires": np.zeros((3, 192, 192)), "rotated (control)": np.ones((2, 192, 192))}
    fig = F.show_first(sets, ncols=5, vmin=0, vmax=1)
    shown = [ax for ax in fig.axes if ax.images]
    assert [ax.get_title() for ax in shown] == ["iqi wires", "rotated (control)"]
    assert [float(ax.images[0].get_array().mean()) for ax in shown] == [0.0, 1.0]
    assert F.legibility_problems(fig) == []


def test_a_chapter_reports_the_figures_it_shows_too_small(tmp_path):
    # The check runs in the chapter's own kernel, on the image the inline backend made.
    from weldlab import book

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("import matplotlib.pyplot as plt\nfrom weldlab.figures import book_style\nbook_style()"),
        nbformat.v4.new_code_cell("fig, ax = plt.subplots(figsize=(18, 3))\nax.set_title('far too wide')"),
        nbformat.v4.new_code_cell("fig, ax = plt.subplots(figsize=(8, 3))\nax.set_title('fits')"),
    ]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    src = tmp_path / "chapter.ipynb"
    nbformat.write(nb, src)
    seen = []
    out = book.execute_chapter(src, tmp_path / "run" / "chapter.ipynb", {}, log=seen.append)
    problems = book.figure_problems(out)
    assert any("'far too wide'" in p for p in problems) and not any("'fits'" in p for p in problems)
    assert all(p.startswith(F.FIGURE_CHECK_MARK) for p in problems)
    assert seen == [f"chapter: {p}" for p in problems]
