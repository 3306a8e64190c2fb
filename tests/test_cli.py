import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from weldlab import book
from weldlab.book import assets
from weldlab.cli import main

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.robustness
def test_bad_preset_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["datasets", "--preset", "fast"])
    assert exc.value.code == 2
    assert "fast" in capsys.readouterr().err


@pytest.mark.robustness
def test_unknown_override_names_the_parameter(capsys):
    assert main(["datasets", "-p", "n_bananas=3"]) == 2
    assert "n_bananas" in capsys.readouterr().err


@pytest.mark.robustness
def test_missing_gdxray_folder_is_a_clear_error(tmp_path, capsys):
    code = main(["datasets", "--data", "gdxray", "--gdxray-root", str(tmp_path / "missing"),
                 "-p", f"artifacts_root={tmp_path}"])
    assert code == 2
    err = capsys.readouterr().err
    assert "GDXray" in err and "missing" in err


def test_simulate_writes_pngs(tmp_path):
    from weldlab.radiographs import load_image, load_mask

    assert main(["simulate", "--n", "1", "--out", str(tmp_path), "-p", "sim_width=800", "-p", "sim_height=400"]) == 0
    img = load_image(tmp_path / "sim_0001.png")
    assert img.shape == (400, 800)
    assert load_mask(tmp_path / "sim_0001_mask.png", img.shape).any()


def test_datasets_command_prints_table(tmp_path, capsys):
    args = ["datasets", "-p", f"artifacts_root={tmp_path}", "-p", "sim_train_radiographs=1",
            "-p", "sim_test_radiographs=1", "-p", "sim_width=900", "-p", "sim_height=400",
            "-p", "n_train_okay=5", "-p", "n_val_okay=2", "-p", "n_train_defect=4", "-p", "n_test_okay=5",
            "-p", "n_test_defect=4", "-p", "n_synthetic_test=2", "-p", "progress=false"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "train_okay" in out and (tmp_path / "synthetic" / "quick" / "datasets" / "manifest.json").is_file()


def test_console_script_installed():
    out = subprocess.run([str(Path(sys.executable).parent / "weldlab"), "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and "weldlab" in out.stdout


def _fake_repo(tmp_path, source):
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "book").mkdir()
    (tmp_path / "book" / "intro.md").write_text("# Intro\n")
    (tmp_path / "_config.yml").write_text("title: t\nexecute:\n  execute_notebooks: 'off'\n")
    (tmp_path / "_toc.yml").write_text(
        "format: jb-book\nroot: book/intro\nchapters:\n  - file: notebooks/01_ok\n  - file: notebooks/02_bad\n")
    for name, src in (("01_ok", "x = 1"), ("02_bad", source)):
        nb = nbformat.v4.new_notebook()
        params = nbformat.v4.new_code_cell("preset = 'quick'")
        params.metadata["tags"] = ["parameters"]
        nb.cells = [params, nbformat.v4.new_code_cell("y = 2"), nbformat.v4.new_code_cell(src)]
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, tmp_path / "notebooks" / f"{name}.ipynb")
    return tmp_path


def test_failing_chapter_is_named_and_nothing_is_published(tmp_path):
    root = _fake_repo(tmp_path, "raise RuntimeError('boom in chapter two')")
    assert [c.name for c in book.chapters(root)] == ["01_ok.ipynb", "02_bad.ipynb"]
    with pytest.raises(book.ChapterError, match=r"chapter 02_bad failed at cell 3 .*raise RuntimeError.*: RuntimeError: boom"):
        book.run_book("quick", root=root, overrides={"artifacts_root": str(tmp_path / "art")}, log=lambda *a: None)
    assert not (root / "_build" / "synthetic" / "quick" / "html").exists()


def test_kernel_replies_a_poll_missed_are_read_at_the_next_poll(monkeypatch):
    """jupyter/nbclient#312: one poll for a cell's reply can miss its wake-up (chapter 8's widget
    cell waited 900 s for a reply sent after 0.7 s); the runner's clients poll in slices."""
    import asyncio
    from queue import Empty

    from jupyter_client.channels import AsyncZMQSocketChannel

    from weldlab.book import runner

    manager = runner.PollingKernelManager()
    manager.client_class = "jupyter_client.asynchronous.AsyncKernelClient"  # as nbclient names it
    assert manager.client_factory is runner._SlicedClient
    polls, replies = [], [None, {"msg_type": "execute_reply"}]  # the first poll misses the reply

    async def poll(self, timeout=None):
        polls.append(timeout)
        reply = replies.pop(0) if replies else None
        if reply is None:
            raise Empty
        return reply

    monkeypatch.setattr(AsyncZMQSocketChannel, "get_msg", poll)
    monkeypatch.setattr(runner, "POLL_SLICE", 0.01)
    channel = runner._SlicedChannel.__new__(runner._SlicedChannel)
    assert asyncio.run(channel.get_msg(timeout=None)) == {"msg_type": "execute_reply"}
    assert polls == [0.01, 0.01]
    polls.clear()  # no reply at all: Empty once the whole timeout is spent, in slices
    with pytest.raises(Empty):
        asyncio.run(channel.get_msg(timeout=0.05))
    assert len(polls) >= 3 and all(0 <= t <= 0.01 for t in polls)


def test_hung_cell_fails_its_chapter_after_the_cell_timeout(tmp_path):
    """A kernel that never answers stops the build with the chapter and cell named."""
    import time

    root = _fake_repo(tmp_path, "import time\ntime.sleep(600)")
    t, said = time.perf_counter(), []
    with pytest.raises(book.ChapterError, match=r"chapter 02_bad failed at cell 3 \('import time'\): .*Timeout"):
        book.run_book("quick", root=root, overrides={"artifacts_root": str(tmp_path / "art")}, log=said.append,
                      cell_timeout=5)
    assert time.perf_counter() - t < 120
    assert not (root / "_build" / "synthetic" / "quick" / "html").exists()
    again = [m for m in said if "running the chapter again" in m]
    assert len(again) == book.TIMEOUT_ATTEMPTS - 1 and "02_bad: cell 3" in again[0]


def test_a_chapter_that_hung_once_is_run_again(tmp_path):
    """A kernel that stops answering once (jupyter/nbclient#312) costs one cell timeout."""
    mark = tmp_path / "hung-once"
    root = _fake_repo(tmp_path, f"import os, time\nif not os.path.exists({str(mark)!r}):\n"
                                f"    open({str(mark)!r}, 'w').close()\n    time.sleep(600)")
    said = []
    book.run_book("quick", root=root, only=["02_bad"], overrides={"artifacts_root": str(tmp_path / "art")},
                  log=said.append, cell_timeout=5)
    assert mark.exists() and any("running the chapter again" in m for m in said)


def test_chapters_get_the_gdxray_copy_beside_the_repository_as_an_absolute_path(tmp_path, monkeypatch):
    """A chapter run again from the build folder finds nothing at ``../shared/data/gdxray``:
    the runner resolves the copy and passes it as an absolute path."""
    from weldlab.radiographs import GDXRAY_IMAGES, GDXRAY_MASKS

    (tmp_path / "repo").mkdir()
    chapter = "import os\ncopy = globals().get('gdxray_root')\nassert copy and os.path.isabs(copy), copy"
    root = _fake_repo(tmp_path / "repo", chapter)
    monkeypatch.delenv("WELDLAB_GDXRAY", raising=False)
    monkeypatch.chdir(tmp_path)  # neither the repository nor its notebooks/
    assert book.book_gdxray_root(root) is None
    with pytest.raises(book.ChapterError, match="AssertionError: None"):  # none passed
        book.run_book("quick", root=root, only=["02_bad"], overrides={"artifacts_root": str(tmp_path / "art")},
                      log=lambda *a: None)
    copy = tmp_path / "shared" / "data" / "gdxray"
    for name in (GDXRAY_IMAGES, GDXRAY_MASKS):
        (copy / "Welding" / name).mkdir(parents=True)
    assert book.book_gdxray_root(root) == copy.resolve()
    book.run_book("quick", root=root, only=["02_bad"], overrides={"artifacts_root": str(tmp_path / "art")},
                  log=lambda *a: None)


@pytest.mark.robustness
def test_bad_parameter_fails_before_any_chapter(tmp_path):
    root = _fake_repo(tmp_path, "x = 3")
    with pytest.raises(ValueError, match="n_train_okay"):
        book.run_book("quick", root=root, overrides={"n_train_okay": -1}, log=lambda *a: None)
    assert not (root / "_build").exists()


def test_widget_javascript_is_checked_against_its_published_hash(tmp_path, monkeypatch):
    """A cached npm tarball that is not the published one is refused and removed; the
    pinned ones unpack into ``_static/widgets`` (fetched with npm when not cached)."""
    import shutil

    package, (version, integrity, _) = next(iter(book.WIDGET_JS.items()))
    cache = tmp_path / "cache"
    cache.mkdir()
    fake = cache / f"{package.lstrip('@').replace('/', '-')}-{version}.tgz"
    fake.write_bytes(b"not the package")
    with pytest.raises(book.BookBuildError, match="sha512 differs"):
        assets._npm_tarball(package, version, integrity, cache)
    assert not fake.exists()
    if shutil.which("npm") is None:
        monkeypatch.setenv("PATH", "")
        with pytest.raises(book.BookBuildError, match="npm not found"):
            assets._npm_tarball(package, version, integrity, cache)
        return
    widgets = book.offline_assets(tmp_path / "_static", cache=cache)
    assert {"require.js", "embed-amd.js"} <= {p.name for p in widgets.iterdir()}
    assert (widgets / "embed-amd.js").stat().st_size > 1e6
