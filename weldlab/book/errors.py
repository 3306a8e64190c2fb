"""What can stop a book build: a failing chapter, or the build itself."""


class ChapterError(RuntimeError):
    """A chapter failed to execute."""

    def __init__(self, chapter, cell, message):
        self.chapter, self.cell = chapter, cell
        super().__init__(f"chapter {chapter} failed at cell {cell}: {message}")


class BookBuildError(RuntimeError):
    """Jupyter Book failed to render (or warned)."""
