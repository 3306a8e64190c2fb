"""Issue 11: every chapter has the skeleton of a teaching chapter, and the book's pages and
downloadable notebooks are fit to publish. (That the solutions run, and that the rendered
pages pass, is checked where the book is built: tests/test_chapters.py.)"""

from pathlib import Path

import nbformat
import pytest

from weldlab import book

REPO = Path(__file__).resolve().parent.parent
CHAPTERS = book.chapters(REPO)


def _cells(chapter):
    return nbformat.read(REPO / chapter, as_version=4).cells


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_has_goals_prerequisites_summary_and_an_exercise_with_a_hidden_solution(chapter):
    nb = nbformat.read(REPO / chapter, as_version=4)
    intro = nb.cells[0].source
    assert intro.startswith("# ") and "**In this chapter you will learn**" in intro and "**Prerequisites**" in intro
    assert sum(c.source.count("\n## ") + c.source.startswith("## ") for c in nb.cells if c.cell_type == "markdown") >= 3
    summary = [c for c in nb.cells if c.cell_type == "markdown" and c.source.startswith("## Summary")]
    assert len(summary) == 1 and summary[0].source.count("\n- ") >= 3, "a summary of at least three points"
    ex = book.chapter_exercise(nb)  # raises, naming what is missing
    assert ex["label"].startswith("exercise-") and len(ex["text"]) > 100
    solution = next(c for c in nb.cells if book.SOLUTION_TAG in c.metadata.get("tags", []))
    assert "hide-cell" in solution.metadata["tags"]  # behind a toggle, input and output
    assert solution.metadata["mystnb"]["code_prompt_show"] == "Show the solution"
    order = [i for i, c in enumerate(nb.cells) if c is summary[0] or book.EXERCISE_TAG in c.metadata.get("tags", [])
             or c is solution]
    assert order == sorted(order) and len(order) == 3


def test_chapter_exercise_names_what_is_missing():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# 1. A chapter")])
    with pytest.raises(ValueError, match="one cell tagged 'exercise'"):
        book.chapter_exercise(nb)
    nb.cells += [nbformat.v4.new_markdown_cell("(exercise-x)=\n## Exercise\n\nDo it.", metadata={"tags": ["exercise"]}),
                 nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["solution", "hide-cell"]})]
    with pytest.raises(ValueError, match="with assert"):
        book.chapter_exercise(nb)
    nb.cells[-1].source = "x = 1\nassert x == 1"
    assert book.chapter_exercise(nb) == {"title": "1. A chapter", "label": "exercise-x", "text": "Do it.",
                                         "solution": "x = 1\nassert x == 1"}


def test_exercises_page_is_generated_from_every_chapter():
    page = book.exercises_page([REPO / c for c in CHAPTERS])
    assert page.startswith("# Exercises")
    for chapter in CHAPTERS:
        ex = book.chapter_exercise(nbformat.read(REPO / chapter, as_version=4))
        assert f"## {ex['title']}" in page and f"<{ex['label']}>" in page and ex["solution"] in page
    assert page.count(":::{dropdown} Solution") == len(CHAPTERS)
    assert not (REPO / "book" / "exercises.md").exists()  # one home: the chapters


def test_published_notebook_keeps_the_run_but_not_the_machine(tmp_path):
    params = nbformat.v4.new_code_cell('artifacts_root = "../artifacts"\ngdxray_root = None\nseed = 0',
                                       metadata={"tags": ["parameters"]})
    injected = nbformat.v4.new_code_cell(
        f'artifacts_root = "{tmp_path}/artifacts"\ngdxray_root = "/data/gdxray"\nseed = 3\npreset = "standard"',
        metadata={"tags": ["injected-parameters", "remove-cell"]})
    work = nbformat.v4.new_code_cell("print(1)")
    work.outputs = [nbformat.v4.new_output("stream", name="stderr", text="I0000 cuda_stub: no GPU\n"),
                    nbformat.v4.new_output("stream", name="stdout", text="1\n")]
    path = tmp_path / "chapter.ipynb"
    papermill = {"input_path": "/home/me/weldlab/notebooks/chapter.ipynb", "output_path": f"{tmp_path}/chapter.ipynb",
                 "parameters": {"artifacts_root": f"{tmp_path}/artifacts", "seed": 3}}
    nbformat.write(nbformat.v4.new_notebook(cells=[params, injected, work], metadata={"papermill": papermill}), path)
    book.portable_notebook(path)
    cells = nbformat.read(path, as_version=4).cells
    assert cells[1].source == 'artifacts_root = "../artifacts"\ngdxray_root = None\nseed = 3\npreset = "standard"'
    assert [o.name for o in cells[2].outputs] == ["stdout"]
    assert "remove-cell" in cells[1].metadata.tags
    assert str(tmp_path) not in path.read_text() and "/home/me" not in path.read_text()
    assert nbformat.read(path, as_version=4).metadata.papermill == {"parameters": {"seed": 3}}


def test_machine_paths_are_found_in_pages_and_downloads(tmp_path):
    (tmp_path / "_sources" / "notebooks").mkdir(parents=True)
    (tmp_path / "index.html").write_text("<p>artifacts in ../artifacts</p>")
    (tmp_path / "_sources" / "notebooks" / "02.ipynb").write_text('{"text": "/home/me/weldlab/artifacts/x"}')
    assert book.machine_paths(tmp_path, ["/home/me/weldlab"]) == ["_sources/notebooks/02.ipynb: /home/me/weldlab"]
    assert book.machine_paths(tmp_path, ["/srv/other"]) == []


def test_chapter_code_fits_the_page():
    """ruff (make test) checks it with notebooks/ruff.toml; this keeps that configuration."""
    import tomllib

    conf = tomllib.loads((REPO / "notebooks" / "ruff.toml").read_text())
    assert conf["line-length"] <= 88 and "E" in conf["lint"]["select"] and "E501" not in conf["lint"].get("ignore", [])
    longest = max(len(line) for c in CHAPTERS for cell in _cells(c) if cell.cell_type == "code"
                  for line in cell.source.splitlines())
    assert longest <= conf["line-length"], longest


def test_source_archive_holds_the_tree_and_is_reproducible(tmp_path):
    """Issue 24: the book offers the source of the version that built it."""
    import tarfile

    first = book.source_archive(REPO, tmp_path / "a.tar.gz")
    second = book.source_archive(REPO, tmp_path / "b.tar.gz")
    assert first.read_bytes() == second.read_bytes()  # same tree, same bytes
    with tarfile.open(first) as tar:
        names = set(tar.getnames())
        makefile = tar.extractfile("weldlab/Makefile").read()
    for need in ("Makefile", "pyproject.toml", "README.md", "_toc.yml", "weldlab/__init__.py", "book/run.md",
                 "notebooks/01_radiographs.ipynb", "weldlab/pretrained/ae/sni/seed0/autoencoder.keras"):
        assert f"weldlab/{need}" in names, need
    assert makefile == (REPO / "Makefile").read_bytes()
    assert not any(part in book.NOT_SOURCE for n in names for part in n.split("/")), "built or installed files"
    # outside a git checkout (an unpacked archive) the same files are found without git
    unpacked = tmp_path / "unpacked"
    with tarfile.open(first) as tar:
        tar.extractall(unpacked, filter="data")
    (unpacked / "weldlab" / ".venv").mkdir()
    (unpacked / "weldlab" / ".venv" / "x.py").write_text("")
    again = [p.relative_to(unpacked / "weldlab").as_posix() for p in book.source_files(unpacked / "weldlab")]
    assert sorted(again) == sorted(n.removeprefix("weldlab/") for n in names if n.startswith("weldlab/"))


def test_checked_outputs_are_recorded_and_differences_named(tmp_path):
    executed = tmp_path / "executed"
    executed.mkdir()
    cells = [nbformat.v4.new_code_cell("# NBVAL_CHECK_OUTPUT\nprint(n)"), nbformat.v4.new_code_cell("print(1)")]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.cells[0].outputs = [nbformat.v4.new_output("stream", name="stdout", text="n = 3\n")]
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", name="stdout", text="1\n")]  # not marked
    nbformat.write(nb, executed / "01_a.ipynb")
    with pytest.raises(FileNotFoundError, match="no checked outputs recorded for preset 'quick' on 'gdxray'"):
        book.read_record("quick", "gdxray", tmp_path)
    book.record_outputs(executed, "quick", "synthetic", tmp_path)
    book.record_outputs(executed, "standard", "synthetic", tmp_path)  # kept beside the other
    recorded = book.read_record("quick", "synthetic", tmp_path)
    assert recorded == {"01_a": ["n = 3\n"]} == book.read_record("standard", "synthetic", tmp_path)
    assert book.differences(executed / "01_a.ipynb", recorded["01_a"]) == []
    nb.cells[0].outputs[0].text = "n = 4\n"
    nbformat.write(nb, executed / "01_a.ipynb")
    problems = book.differences(executed / "01_a.ipynb", recorded["01_a"])
    assert len(problems) == 1 and "-n = 3" in problems[0] and "+n = 4" in problems[0]
    assert book.differences(executed / "01_a.ipynb", ["n = 4\n", "more\n"]) == ["1 marked cells, 2 recorded"]
