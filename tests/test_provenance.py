import pytest

from weldlab.provenance import atomic_file, machine_description


def test_machine_description_names_the_machine():
    import keras

    m = machine_description()
    assert m["cores"] >= 1 and m["memory_gib"] > 0 and m["cpu"]
    assert isinstance(m["accelerators"], list) and all(not d.startswith("cpu") for d in m["accelerators"])
    assert m["keras_backend"] == keras.backend.backend() and m["keras"] == keras.__version__
    assert m["git_commit"] and m["python"]


def test_atomic_file_replaces_only_on_success(tmp_path):
    target = tmp_path / "out.png"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_file(target) as tmp:
            assert tmp.suffix == ".png" and tmp.parent == tmp_path
            tmp.write_bytes(b"half")
            raise RuntimeError("interrupted")
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["out.png"]
    with atomic_file(target) as tmp:
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new" and [p.name for p in tmp_path.iterdir()] == ["out.png"]


def test_atomic_directory_removes_what_a_killed_build_left_only(tmp_path):
    from weldlab.provenance import atomic_directory

    dead = tmp_path / ".datasets.4194303.x1y2.partial"  # above any pid the kernel hands out
    live = tmp_path / ".datasets.1.a3b4.partial"  # pid 1 is always running
    for d in (dead, live):
        d.mkdir()
        (d / "train_okay.npy").write_bytes(b"half")
    with atomic_directory(tmp_path / "datasets") as tmp:
        (tmp / "manifest.json").write_text("{}")
    assert not dead.exists() and live.exists() and (tmp_path / "datasets" / "manifest.json").is_file()
