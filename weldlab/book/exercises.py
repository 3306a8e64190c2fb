"""Each chapter's exercise and solution, and the Exercises page collected from them."""

from __future__ import annotations


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
