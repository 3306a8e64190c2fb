"""The robustness suite: every bad input, tried against every entry point that takes it.

Bad inputs (the developers' brief): a corrupt, truncated, empty, 16-bit or RGB image, a
too-small image, a mask of the wrong shape, NaNs, a missing data folder, bad parameters,
a corrupt model file. Entry points: the image loaders, the patch sampler, the residual
statistics, the scanner (arrays, files and ``weldlab scan``), model loading (safe mode
stays on), training resume, and chapter parameters under papermill.

Each bad input must give a clear error that names the input and what was expected, and
must not destroy anything already computed. The interruption and determinism tests that
live beside the code they exercise carry the ``robustness`` marker too, so
``pytest -m robustness`` (``make robustness``) runs the whole suite.
"""

import json
import re
import os
import warnings
import zipfile
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import keras  # noqa: E402

from weldlab import patches, residuals  # noqa: E402
from weldlab.cli import main  # noqa: E402
from weldlab.geometry import MIN_SIDE  # noqa: E402
from weldlab.models import ARCHITECTURE_VERSION, build_autoencoder, build_cnn, load_model  # noqa: E402
from weldlab.radiographs import (  # noqa: E402
    Radiograph, RadiographError, check_image_array, check_mask, load_image, load_mask,
)
from weldlab.detector import Detector, compare_with_mask, scan_image  # noqa: E402
from weldlab.scan import scan_files  # noqa: E402

pytestmark = pytest.mark.robustness

GOOD_SHAPE = (240, 330)
#: What a weldlab autoencoder's record.json says about the model (checked by Detector.load).
AE_RECORD = {"model": "ae", "architecture": ARCHITECTURE_VERSION["ae"]}


def _record(t_mean, t_std, **fields):
    """A record with the calibration ``weldlab scan`` needs: thresholds for both rules and
    input ranges that let every image through."""
    from weldlab.screening import STATISTICS

    th = {"t_mean": t_mean, "t_std": t_std}
    return {**AE_RECORD, "thresholds": th, "two_sided_thresholds": {**th, "t_quiet": 1e-12},
            "input_ranges": {"film": {"ranges": {k: [None, None] for k in STATISTICS}, "source": "tests"}}, **fields}


# --------------------------------------------------------------------------- image files
def _good_png(path):
    iio.imwrite(path, (np.random.default_rng(0).random(GOOD_SHAPE) * 255).astype(np.uint8))
    return path


def _corrupt(path):
    path.write_bytes(b"\x89PNG\r\n\x1a\n this is not a png")


def _truncated(path):
    data = _good_png(path).read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _empty(path):
    path.write_bytes(b"")


def _text(path):
    path.write_text("a radiograph, honestly")


def _too_small(path):
    iio.imwrite(path, np.zeros((100, 500), np.uint8))


def _nan_float(path):
    a = np.full(GOOD_SHAPE, 0.5, np.float32)
    a[3, 4] = np.nan
    iio.imwrite(path, a)


def _out_of_range(path):
    iio.imwrite(path, np.full(GOOD_SHAPE, 7.0, np.float32))


def _int32(path):
    iio.imwrite(path, np.full(GOOD_SHAPE, 7, np.int32))


def _stack(path):
    iio.imwrite(path, np.zeros((3, *GOOD_SHAPE), np.uint8))


#: name -> (file name, writer, pattern the error must match after the file's name)
BAD_FILES = {
    "corrupt": ("corrupt.png", _corrupt, "cannot be decoded"),
    "truncated": ("truncated.png", _truncated, "cannot be decoded.*truncated"),
    "empty": ("empty.png", _empty, r"empty \(0 bytes\)"),
    "not an image": ("notes.png", _text, "cannot be decoded"),
    "too small": ("tiny.png", _too_small, f"100x500.*at least {MIN_SIDE}"),
    "NaN pixels": ("nan.tif", _nan_float, "1 NaN or infinite"),
    "out of range": ("bright.tif", _out_of_range, r"expected \[0, 1\]"),
    "32-bit integer": ("deep.tif", _int32, "int32 is not supported"),
    "image stack": ("stack.tif", _stack, r"\(3, 240, 330\) is not a grayscale"),
    "missing": ("absent.png", None, "not found"),
}


@pytest.fixture
def bad_file(request, tmp_path):
    name, writer, pattern = BAD_FILES[request.param]
    path = tmp_path / name
    if writer is not None:
        writer(path)
    return path, pattern


@pytest.fixture(scope="module")
def detector():
    """An untrained autoencoder with thresholds no residual reaches: every scan accepts."""
    keras.utils.set_random_seed(0)
    return Detector(build_autoencoder(seed=0), {"t_mean": 1e6, "t_std": 1e6}, {"model": "autoencoder"})


@pytest.mark.parametrize("bad_file", list(BAD_FILES), indirect=True)
def test_image_loader(bad_file):
    path, pattern = bad_file
    with pytest.raises((RadiographError, FileNotFoundError), match=f"{path.name}.*{pattern}"):
        load_image(path)


@pytest.mark.parametrize("bad_file", list(BAD_FILES), indirect=True)
def test_scan_files_reports_the_bad_file_and_scans_the_others(bad_file, detector, tmp_path):
    path, pattern = bad_file
    good = _good_png(tmp_path / "good.png")
    out = tmp_path / "out"
    out.mkdir()
    earlier = out / "earlier.json"
    earlier.write_text('{"verdict": "accept"}')  # a verdict from an earlier run is kept
    res = scan_files([path, good], detector, out, log=lambda *a: None)
    assert [r["verdict"] for r in res] == ["error", "accept"]
    assert path.name in res[0]["error"]
    assert json.loads((out / f"{path.stem}_{path.suffix[1:]}.json").read_text())["verdict"] == "error"
    assert (out / "good_png_overlay.png").is_file() and json.loads((out / "good_png.json").read_text())["verdict"] == "accept"
    assert earlier.read_text() == '{"verdict": "accept"}'


@pytest.mark.parametrize("bad_file", ["corrupt", "too small", "missing"], indirect=True)
def test_scan_cli_exits_1_and_writes_the_good_verdicts(bad_file, tmp_path, capsys):
    path, _ = bad_file
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    detector_model = build_autoencoder(seed=0)
    detector_model.save(model_dir / "autoencoder.keras")
    (model_dir / "record.json").write_text(json.dumps(_record(1e6, 1e6)))
    good = _good_png(tmp_path / "good.png")
    out = tmp_path / "out"
    assert main(["scan", str(path), str(good), "--model", str(model_dir), "--out", str(out)]) == 1
    assert path.name in capsys.readouterr().out
    assert json.loads((out / "good_png.json").read_text())["verdict"] == "accept"


def test_accepted_variants_are_converted_and_say_so(detector, tmp_path):
    """16-bit files are scaled, RGB(A) converted with a warning; both scan like 8-bit."""
    g8 = (np.random.default_rng(1).random(GOOD_SHAPE) * 255).astype(np.uint8)
    iio.imwrite(tmp_path / "g8.png", g8)
    iio.imwrite(tmp_path / "g16.tif", g8.astype(np.uint16) * 257)
    iio.imwrite(tmp_path / "rgb.png", np.repeat(g8[..., None], 3, axis=2))
    iio.imwrite(tmp_path / "rgba.png", np.dstack([g8, g8, g8, np.full_like(g8, 255)]))
    ref = load_image(tmp_path / "g8.png")
    assert np.allclose(load_image(tmp_path / "g16.tif"), ref, atol=1e-6)
    for name in ("rgb.png", "rgba.png"):
        with pytest.warns(UserWarning, match=f"{name}.*grayscale"):
            assert np.allclose(load_image(tmp_path / name), ref, atol=2e-3)
        with pytest.raises(RadiographError, match=f"{name}.*expected grayscale"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            load_image(tmp_path / name, allow_rgb=False)
    with pytest.raises(RadiographError, match="g16.tif.*16-bit"):
        load_image(tmp_path / "g16.tif", allow_16bit=False)
    res = scan_files([tmp_path / n for n in ("g8.png", "g16.tif", "rgb.png")], detector, tmp_path / "out",
                     log=lambda *a: None)
    assert [r["verdict"] for r in res] == ["accept"] * 3
    assert any("grayscale" in w for w in res[2]["warnings"]) and not res[0]["warnings"]
    assert res[1]["max_score"] == pytest.approx(res[0]["max_score"], rel=1e-3)


def test_interrupted_scan_leaves_no_half_written_overlay(detector, tmp_path, monkeypatch):
    import weldlab.scan as scan_module

    good = _good_png(tmp_path / "good.png")
    out = tmp_path / "out"

    def broken_writer(path, *a, **k):
        Path(path).write_bytes(b"\x89PNG half")  # the disk fills up half way
        raise OSError("No space left on device")

    monkeypatch.setattr(scan_module, "overlay", lambda *a, **k: np.zeros((8, 8, 3), np.uint8))
    import imageio.v3

    monkeypatch.setattr(imageio.v3, "imwrite", broken_writer)
    with pytest.raises(OSError, match="No space"):
        scan_files([good], detector, out, log=lambda *a: None)
    assert not (out / "good_png_overlay.png").exists() and not list(out.glob(".*partial*"))


# --------------------------------------------------------------------------- arrays
def _with_nan():
    a = np.full(GOOD_SHAPE, 0.5, np.float32)
    a[5, 6] = np.nan
    return a


def _with_inf():
    a = np.full(GOOD_SHAPE, 0.5, np.float32)
    a[5, 6] = np.inf
    return a


#: name -> (array, pattern)
BAD_ARRAYS = {
    "NaN": (_with_nan, "1 NaN or infinite"),
    "infinite": (_with_inf, "1 NaN or infinite"),
    "out of range": (lambda: np.full(GOOD_SHAPE, 3.0, np.float32), r"\[0, 1\]"),
    "negative": (lambda: np.full(GOOD_SHAPE, -0.2, np.float32), r"\[0, 1\]"),
    "3-D": (lambda: np.zeros((*GOOD_SHAPE, 2), np.float32), "2-D"),
    "1-D": (lambda: np.zeros(500, np.float32), "2-D"),
    "too small": (lambda: np.zeros((100, 400), np.float32), "at least"),
    "empty": (lambda: np.zeros((0, 0), np.float32), "at least|empty"),
}


def _call_check(a):
    check_image_array(a, what="film")


def _call_radiograph(a):
    Radiograph("film", a, np.zeros(np.shape(a)[:2], bool))


def _call_sampler(a):
    patches.sample_patches(a, np.zeros(np.shape(a)[:2], bool), 1, 0, np.random.default_rng(0))


def _call_scan(a, detector=None):
    scan_image(detector, a, name="film")


ARRAY_ENTRY_POINTS = {"check_image_array": _call_check, "Radiograph": _call_radiograph,
                      "sample_patches": _call_sampler, "scan_image": _call_scan}


@pytest.mark.parametrize("entry", list(ARRAY_ENTRY_POINTS))
@pytest.mark.parametrize("bad", list(BAD_ARRAYS))
def test_bad_image_arrays(bad, entry, detector):
    make, pattern = BAD_ARRAYS[bad]
    call = ARRAY_ENTRY_POINTS[entry]
    with pytest.raises(ValueError, match=pattern):
        call(make(), detector) if entry == "scan_image" else call(make())


def test_bad_residuals_for_the_kernel_statistics():
    r = np.zeros((2, 40, 40))
    r[1, 3, 3] = np.nan
    with pytest.raises(ValueError, match="residual.*NaN"):
        residuals.kernel_statistics(r)
    with pytest.raises(ValueError, match="residual.*NaN"):
        residuals.patch_maxima(r)
    with pytest.raises(ValueError, match=r"residual: expected shape"):
        residuals.kernel_statistics(np.zeros((2, 2, 40, 40)))
    with pytest.raises(ValueError, match="kernel"):
        residuals.kernel_statistics(np.zeros((5, 5)), kernel=9)


# --------------------------------------------------------------------------- masks
def test_mask_of_the_wrong_shape_everywhere(tmp_path):
    image = np.full(GOOD_SHAPE, 0.5, np.float32)
    wrong = np.zeros((GOOD_SHAPE[0], GOOD_SHAPE[1] - 1), bool)
    pattern = r"\(240, 329\).*\(240, 330\)|does not match"
    with pytest.raises(ValueError, match=pattern):
        check_mask(wrong, image.shape)
    with pytest.raises(ValueError, match=pattern):
        Radiograph("film", image, wrong)
    with pytest.raises(ValueError, match=pattern):
        patches.sample_patches(image, wrong, 1, 0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="mask"):
        compare_with_mask([], np.zeros((232, 322), bool), wrong)
    iio.imwrite(tmp_path / "mask.png", wrong.astype(np.uint8) * 255)
    with pytest.raises(RadiographError, match=f"mask.png.*{pattern}"):
        load_mask(tmp_path / "mask.png", image.shape)
    with pytest.raises(ValueError, match="mask"):
        check_mask(np.zeros((*GOOD_SHAPE, 3), bool), image.shape)


# --------------------------------------------------------------------------- model files
def _lambda_model(path):
    """A model that can only be loaded by running arbitrary code: safe mode must refuse it."""
    x = keras.Input((192, 192, 1))
    keras.Model(x, keras.layers.Lambda(lambda t: t * 2.0)(x)).save(path)


def _zip_not_model(path):
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("hello.txt", "not a model")


def _truncated_model(path):
    build_autoencoder(seed=0).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _random_bytes(path):
    path.write_bytes(np.random.default_rng(0).bytes(4096))


#: name -> (writer, pattern)
BAD_MODELS = {
    "missing": (None, "not found"),
    "random bytes": (_random_bytes, "cannot be loaded"),
    "truncated": (_truncated_model, "cannot be loaded"),
    "zip, not a model": (_zip_not_model, "cannot be loaded"),
    "Lambda layer (unsafe)": (_lambda_model, "refused.*Python code.*safe mode"),
}


@pytest.fixture
def bad_model(request, tmp_path):
    writer, pattern = BAD_MODELS[request.param]
    folder = tmp_path / "model"
    folder.mkdir()
    path = folder / "autoencoder.keras"
    if writer is not None:
        writer(path)
    (folder / "record.json").write_text(json.dumps(_record(0.1, 0.1)))
    return path, pattern


@pytest.mark.parametrize("bad_model", list(BAD_MODELS), indirect=True)
def test_bad_model_files(bad_model, tmp_path, capsys):
    path, pattern = bad_model
    before = path.read_bytes() if path.exists() else None
    with pytest.raises((ValueError, FileNotFoundError), match=f"autoencoder.keras.*{pattern}"):
        load_model(path)
    with pytest.raises((ValueError, FileNotFoundError), match="autoencoder.keras"):
        Detector.load(path.parent)
    good = _good_png(tmp_path / "good.png")
    assert main(["scan", str(good), "--model", str(path.parent), "--out", str(tmp_path / "out")]) == 2
    assert "autoencoder.keras" in capsys.readouterr().err
    assert not (tmp_path / "out" / "good_png.json").exists()  # nothing scanned with a bad model
    if before is not None:
        assert path.read_bytes() == before  # the bad file is left for the user to inspect


def test_wrong_suffix_and_wrong_network(tmp_path):
    (tmp_path / "m.h5").write_bytes(b"x")
    with pytest.raises(ValueError, match="m.h5.*'.keras'"):
        load_model(tmp_path / "m.h5")
    folder = tmp_path / "cnn_in_disguise"
    folder.mkdir()
    build_cnn(seed=0).save(folder / "autoencoder.keras")
    (folder / "record.json").write_text(json.dumps(_record(0.1, 0.1)))
    with pytest.raises(ValueError, match="cnn_in_disguise: not a weldlab autoencoder: sub-models"):
        Detector.load(folder)


@pytest.mark.parametrize("record, pattern", [
    (None, "no record.json"),
    ("{not json", "record.json: not valid JSON"),
    ("{}", "expected the record of a weldlab ae model"),
    (json.dumps({k: v for k, v in _record(0.1, 0.1).items() if k != "two_sided_thresholds"}),
     "no calibrated 'two_sided_thresholds'"),
    (json.dumps(_record(-1, 0.1)), "t_mean"),
    (json.dumps(_record(0.1, float("nan"))), "t_std"),
    (json.dumps({**_record(0.1, 0.1), "input_ranges": {}}), "no 'input_ranges'"),
])
def test_bad_model_records(record, pattern, tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    build_autoencoder(seed=0).save(folder / "autoencoder.keras")
    if record is not None:
        (folder / "record.json").write_text(record)
    with pytest.raises((ValueError, FileNotFoundError), match=f"model.*{pattern}"):
        Detector.load(folder)


# --------------------------------------------------------------------------- training state
def test_corrupt_training_state_is_named_and_kept(quick_datasets, tmp_path):
    from weldlab.training import train_autoencoder

    _, ds = quick_datasets
    fast = dict(epochs=2, steps_per_epoch=1, val_steps=1, batch_size=2, verbose=0, log=lambda *a: None)
    out = tmp_path / "ae"
    with pytest.raises(KeyboardInterrupt):
        train_autoencoder(ds, "D", seed=0, out_dir=out, stop_after=1, **fast)
    state, ckpt = out / "state.json", out / "checkpoint.keras"
    good_ckpt = ckpt.read_bytes()
    ckpt.write_bytes(good_ckpt[:1000])  # e.g. the disk filled up while it was written
    with pytest.raises(ValueError, match="checkpoint.keras.*delete"):
        train_autoencoder(ds, "D", seed=0, out_dir=out, **fast)
    assert ckpt.read_bytes() == good_ckpt[:1000] and state.is_file()
    ckpt.write_bytes(good_ckpt)
    kept = state.read_text()
    state.write_text(kept[: len(kept) // 2])
    with pytest.raises(ValueError, match="state.json.*corrupt.*delete"):
        train_autoencoder(ds, "D", seed=0, out_dir=out, **fast)
    state.write_text(kept)
    assert train_autoencoder(ds, "D", seed=0, out_dir=out, **fast)["epochs"] == 2  # repaired: resumes


def test_model_of_an_older_architecture_is_moved_aside_and_retrained(quick_datasets, tmp_path):
    from weldlab.models import ARCHITECTURE_VERSION
    from weldlab.training import train_cnn

    _, ds = quick_datasets
    fast = dict(epochs=1, steps_per_epoch=1, val_steps=1, batch_size=2, verbose=0)
    out = tmp_path / "cnn" / "seed0"
    assert train_cnn(ds, "D", seed=0, out_dir=out, log=lambda *a: None, **fast)["architecture"] == ARCHITECTURE_VERSION["cnn"]
    state = json.loads((out / "state.json").read_text())
    del state["architecture"]  # as written before architectures were versioned (v1)
    (out / "state.json").write_text(json.dumps(state))
    old_model = (out / "cnn.keras").read_bytes()
    messages = []
    rec = train_cnn(ds, "D", seed=0, out_dir=out, log=messages.append, **fast)
    assert rec["architecture"] == ARCHITECTURE_VERSION["cnn"]
    assert any("architecture v1" in m and "training afresh" in m for m in messages)
    kept = tmp_path / "cnn" / "seed0.architecture-v1"
    assert (kept / "cnn.keras").read_bytes() == old_model  # nothing is deleted


def test_same_seed_trains_bit_identical_weights(quick_datasets, tmp_path):
    from weldlab.training import train_cnn

    _, ds = quick_datasets
    fast = dict(epochs=1, steps_per_epoch=2, val_steps=1, batch_size=4, verbose=0, log=lambda *a: None)
    weights = []
    for run in ("a", "b"):
        train_cnn(ds, "D+sni", seed=5, out_dir=tmp_path / run, **fast)
        weights.append(load_model(tmp_path / run / "cnn.keras").get_weights())
    assert all(np.array_equal(a, b) for a, b in zip(*weights))


# --------------------------------------------------------------------------- parameters
def test_bad_chapter_parameter_under_papermill_names_it(tmp_path):
    from weldlab import book

    nb = book.chapters()[0]
    params = book.resolve_parameters("quick", overrides={})
    params.update(artifacts_root=str(tmp_path), n_train_okay=-5)
    with pytest.raises(book.ChapterError, match="n_train_okay") as exc:
        book.execute_chapter(nb, tmp_path / nb.name, params)
    assert nb.stem in str(exc.value)
    assert (tmp_path / nb.name).is_file()  # the partly executed notebook is kept to inspect


# --------------------------------------------------------------------------- safe outputs
# Nothing weldlab did not write is deleted or overwritten without --overwrite; outputs are
# unique per input; temporary files are unpredictable and never follow links; user errors
# are one line with exit 2.
def _model_folder(folder, record=None):
    folder.mkdir(parents=True)
    build_autoencoder(seed=0).save(folder / "autoencoder.keras")
    (folder / "record.json").write_text(json.dumps(record or _record(1e6, 1e6)))
    return folder


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    return _model_folder(tmp_path_factory.mktemp("m") / "model")


def test_datasets_out_never_replaces_a_folder_holding_other_files(tmp_path, capsys):
    folder = tmp_path / "thesis"
    folder.mkdir()
    (folder / "thesis.tex").write_text("years of work")
    (folder / "results.csv").write_text("a,b\n1,2\n")
    assert main(["datasets", "--out", str(folder), "-p", "progress=false"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(folder) in err and "--overwrite" in err
    assert sorted(p.name for p in folder.iterdir()) == ["results.csv", "thesis.tex"]
    (tmp_path / "a_file").write_text("x")
    assert main(["datasets", "--out", str(tmp_path / "a_file")]) == 2
    assert "is a file" in capsys.readouterr().err and (tmp_path / "a_file").read_text() == "x"


def test_a_weldlab_dataset_folder_is_recognised_and_a_polluted_one_is_not(quick_datasets, tmp_path):
    import shutil

    from weldlab.datasets import is_dataset_folder

    _, ds = quick_datasets
    copy = tmp_path / "datasets"
    shutil.copytree(ds.path, copy)
    assert is_dataset_folder(copy)  # a rebuild may replace it
    (copy / "my_notes.txt").write_text("keep me")
    assert not is_dataset_folder(copy)  # now it holds something weldlab did not write


def test_scan_outputs_are_unique_per_input_and_duplicates_are_reported(model_folder, tmp_path, capsys):
    rng = np.random.default_rng(5)
    files = []
    for rel in ("x.png", "x.tif", "a/x.png", "b/x.png"):
        path = tmp_path / "in" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        iio.imwrite(path, (rng.random(GOOD_SHAPE) * 255).astype(np.uint8))
        files.append(path)
    out = tmp_path / "out"
    args = [str(p) for p in files] + [str(files[0]), str(files[0])]  # the first one three times
    assert main(["scan", *args, "--model", str(model_folder), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "4 images" in printed and "2 given more than once" in printed
    verdicts = [json.loads(p.read_text()) for p in out.glob("*.json")]
    assert sorted(v["source"] for v in verdicts) == sorted(str(p.resolve()) for p in files)
    assert len(list(out.glob("*_overlay.png"))) == 4
    # a rescan of the same files replaces their own outputs: still four of each
    assert main(["scan", *map(str, files), "--model", str(model_folder), "--out", str(out)]) == 0
    assert len(list(out.glob("*.json"))) == 4 and len(list(out.glob("*_overlay.png"))) == 4


def test_scan_never_overwrites_outputs_it_did_not_write_for_that_input(detector, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "good_png.json").write_text('{"mine": true}')  # the user's file, same name
    (out / "good_png_overlay.png").write_bytes(b"my drawing")
    good = _good_png(tmp_path / "good.png")
    r = scan_files([good], detector, out, log=lambda *a: None)[0]
    assert (out / "good_png.json").read_text() == '{"mine": true}'
    assert (out / "good_png_overlay.png").read_bytes() == b"my drawing"
    assert Path(r["json"]).name.startswith("good_png-") and Path(r["json"]).is_file()
    other = tmp_path / "elsewhere"
    other.mkdir()
    _good_png(other / "good.png")
    r2 = scan_files([other / "good.png"], detector, out, log=lambda *a: None)[0]  # another file, same name
    assert r2["json"] != r["json"] and json.loads(Path(r["json"]).read_text())["source"] == str(good.resolve())
    r3 = scan_files([good], detector, out, log=lambda *a: None, overwrite=True)[0]
    assert Path(r3["json"]).name == "good_png.json"  # asked for explicitly


def test_a_failed_rescan_replaces_all_of_the_inputs_outputs(detector, tmp_path):
    good = _good_png(tmp_path / "film.png")
    out = tmp_path / "out"
    scan_files([good], detector, out, log=lambda *a: None)
    assert (out / "film_png_overlay.png").is_file()
    _corrupt(good)  # the same file, now unreadable
    r = scan_files([good], detector, out, log=lambda *a: None)[0]
    assert r["verdict"] == "error" and json.loads((out / "film_png.json").read_text())["verdict"] == "error"
    assert not (out / "film_png_overlay.png").exists()  # no overlay of the old picture beside the error


def _not_our_autoencoder(kind):
    """Models with sub-models named encoder and decoder that are not weldlab's."""
    x = keras.Input((192, 192, 1))
    if kind == "geometry":  # 192 -> 192 (same padding), a few parameters
        enc = keras.Model(x, keras.layers.Conv2D(1, 3, padding="same")(x), name="encoder")
        z = keras.Input((192, 192, 1))
        dec = keras.Model(z, keras.layers.Conv2D(1, 3, padding="same")(z), name="decoder")
    else:  # right geometry, wider layers: 156 px out, many more parameters
        enc = keras.Model(x, keras.layers.Conv2D(1, 3, strides=4, padding="valid")(
            keras.layers.Conv2D(64, 17, padding="valid")(x)), name="encoder")
        z = keras.Input((44, 44, 1))
        up = keras.layers.Conv2DTranspose(64, 3, strides=4, padding="valid")(z)
        dec = keras.Model(z, keras.layers.Conv2D(1, 1)(keras.layers.Cropping2D(((6, 15), (6, 15)))(up)), name="decoder")
    return keras.Model(x, dec(enc(x)), name="autoencoder")


@pytest.mark.parametrize("kind, pattern", [("geometry", r"output: expected \(156, 156, 1\), got \(192, 192, 1\)"),
                                           ("size", "parameters: expected 41,186")])
def test_scan_refuses_a_wrong_autoencoder_naming_what_differs(kind, pattern, tmp_path, capsys):
    folder = tmp_path / "model"
    folder.mkdir()
    _not_our_autoencoder(kind).save(folder / "autoencoder.keras")
    (folder / "record.json").write_text(json.dumps(_record(0.1, 0.1)))
    with pytest.raises(ValueError, match=f"model: not a weldlab autoencoder: .*{pattern}"):
        Detector.load(folder)
    good = _good_png(tmp_path / "good.png")
    assert main(["scan", str(good), "--model", str(folder), "--out", str(tmp_path / "out")]) == 2
    assert "not a weldlab autoencoder" in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_scan_refuses_a_model_whose_record_is_of_another_architecture(tmp_path):
    folder = _model_folder(tmp_path / "model", _record(0.1, 0.1, architecture=1))
    with pytest.raises(ValueError, match="expected architecture 2, got 1"):
        Detector.load(folder)


def test_temporary_files_never_follow_a_planted_link(detector, tmp_path):
    from weldlab.provenance import atomic_file

    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out = tmp_path / "out"
    out.mkdir()
    # the names the temporary files used to have (predictable from the pid)
    for name in (f".good_overlay.partial-{os.getpid()}.png", f".good_png_overlay.partial-{os.getpid()}.png"):
        (out / name).symlink_to(victim)
    scan_files([_good_png(tmp_path / "good.png")], detector, out, log=lambda *a: None)
    assert victim.read_text() == "precious"
    names = set()
    for _ in range(3):
        with atomic_file(out / "x.json") as tmp:
            assert not tmp.is_symlink() and tmp.parent == out
            names.add(tmp.name)
            tmp.write_text("{}")
    assert len(names) == 3  # unpredictable: a new name every time
    (out / "link.json").symlink_to(victim)
    with atomic_file(out / "link.json") as tmp:
        tmp.write_text("{}")
    assert victim.read_text() == "precious" and not (out / "link.json").is_symlink()


def test_outputs_get_the_same_permissions(detector, tmp_path):
    good = _good_png(tmp_path / "good.png")
    old = os.umask(0o022)
    try:
        r = scan_files([good], detector, tmp_path / "out", log=lambda *a: None)[0]
    finally:
        os.umask(old)
    assert os.stat(r["json"]).st_mode & 0o777 == os.stat(r["overlay"]).st_mode & 0o777 == 0o644


@pytest.mark.parametrize("argv, pattern", [
    (["train", "ae", "--set", "none", "-p", "seeds=0"], r"seeds: expected a list such as \[0, 1, 2\], got 0"),
    (["datasets", "-p", "cnr_cutoffs=5"], "cnr_cutoffs: expected a list"),
    (["datasets", "-p", "gdxray_test=W0001_0004"], "gdxray_test: expected a list"),
    (["scan", "x.png", "--tile", "-1"], "--tile: expected an integer from 32"),
    (["scan", "x.png", "--tile", "7"], "--tile: expected an integer from 32"),
])
def test_user_errors_are_one_line_with_exit_2(argv, pattern, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and re.search(pattern, err) and "Traceback" not in err


def test_out_naming_an_existing_file_is_a_one_line_error(model_folder, tmp_path, capsys):
    good = _good_png(tmp_path / "good.png")
    (tmp_path / "taken").write_text("mine")
    for argv in (["scan", str(good), "--model", str(model_folder), "--out", str(tmp_path / "taken")],
                 ["simulate", "--n", "1", "--out", str(tmp_path / "taken")]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "taken: is a file" in err
    assert (tmp_path / "taken").read_text() == "mine"


def test_simulate_does_not_overwrite_existing_images(tmp_path, capsys):
    out = tmp_path / "sim"
    out.mkdir()
    assert main(["simulate", "--n", "1", "--out", str(out)]) == 0
    name = next(out.glob("*_mask.png"))
    name.write_bytes(b"edited by hand")
    assert main(["simulate", "--n", "1", "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err and name.read_bytes() == b"edited by hand"
    assert main(["simulate", "--n", "1", "--out", str(out), "--overwrite"]) == 0
    assert name.read_bytes() != b"edited by hand"


def test_ctrl_c_is_one_line_and_leaves_nothing_half_written(detector, tmp_path, monkeypatch, capsys):
    import weldlab.scan as scan_module

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(Detector, "load", classmethod(lambda cls, *a, **k: detector))
    monkeypatch.setattr(scan_module, "overlay", interrupted)
    good = _good_png(tmp_path / "good.png")
    out = tmp_path / "out"
    assert main(["scan", str(good), "--out", str(out)]) == 130
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "interrupted" in err
    assert list(out.iterdir()) == []  # neither a verdict, an overlay nor a temporary file


def test_scan_errors_are_one_line_without_terminal_codes(detector, tmp_path, monkeypatch):
    import weldlab.scan as scan_module

    def failing(*a, **k):
        raise RuntimeError("\x1b[31mbackend exploded\x1b[0m\n  at some frame\n  at another")

    monkeypatch.setattr(scan_module, "scan_image", failing)
    r = scan_files([_good_png(tmp_path / "good.png")], detector, tmp_path / "out", log=lambda *a: None)[0]
    assert r["error"] == "RuntimeError: backend exploded"


def test_a_folder_given_as_an_image_is_named_as_a_folder(detector, tmp_path):
    (tmp_path / "films").mkdir()
    with pytest.raises(IsADirectoryError, match="films: is a folder"):
        load_image(tmp_path / "films")
    r = scan_files([tmp_path / "films"], detector, tmp_path / "out", log=lambda *a: None)[0]
    assert "is a folder" in r["error"]


def test_large_images_scan_in_memory_bounded_by_the_tile(detector, tmp_path, monkeypatch):
    """Beyond the image and its 1-byte flag map, a file scan holds only a tile's worth."""
    import tracemalloc

    import weldlab.tiling as tiling_module

    image = np.random.default_rng(0).random((1200, 1600)).astype(np.float32)
    scan_image(detector, image[:300, :300], tile=256)  # warm-up
    tracemalloc.start()
    verdict, maps = scan_image(detector, image, tile=256, keep_maps=False)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert set(maps) == {"flags", "flagged", "max_abs_mean", "max_std"} and maps["flags"].dtype == np.int8
    assert peak < 1.5 * image.size + 40e6, f"{peak / image.size:.1f} bytes per image pixel"
    ref, full = scan_image(detector, image, tile=4096)  # one tile, full maps: the same verdict
    assert verdict.max_score == pytest.approx(ref.max_score, rel=1e-5)
    assert np.array_equal(maps["flags"], full["flags"])
    logs = []
    iio.imwrite(tmp_path / "big.png", np.round(image * 255).astype(np.uint8))
    scan_files([tmp_path / "big.png"], detector, tmp_path / "out", tile=256, log=logs.append)
    assert any("tiles" in line for line in logs) and logs[0].startswith("[1/1]")
    monkeypatch.setattr(tiling_module, "MAX_PIXELS", 1_000_000)
    with pytest.raises(RadiographError, match=r"1200 x 1600 px is more than the 1 megapixels"):
        scan_image(detector, image)


def test_book_builds_only_into_its_own_folder(tmp_path):
    from weldlab.book import BUILD_MARKER, claim_build_folder

    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    build = tmp_path / "site" / "synthetic" / "quick"
    claim_build_folder(build)  # new: fine, and marked
    assert (build / BUILD_MARKER).is_file()
    (build / BUILD_MARKER).unlink()
    (build / BUILD_MARKER).symlink_to(victim)  # a planted link is replaced, not written through
    claim_build_folder(build)
    assert victim.read_text() == "keep" and not (build / BUILD_MARKER).is_symlink()
    (build / "thesis.tex").write_text("mine")
    with pytest.raises(ValueError, match="holds files weldlab did not write.*thesis.tex.*--overwrite"):
        claim_build_folder(build)
    assert (build / "thesis.tex").read_text() == "mine"
