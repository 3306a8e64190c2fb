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
from weldlab.models import build_autoencoder, build_cnn, load_model  # noqa: E402
from weldlab.radiographs import (  # noqa: E402
    MIN_SIDE, Radiograph, RadiographError, check_image_array, check_mask, load_image, load_mask,
)
from weldlab.scan import Detector, compare_with_mask, scan_files, scan_image  # noqa: E402

pytestmark = pytest.mark.robustness

GOOD_SHAPE = (240, 330)


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
    assert json.loads((out / f"{path.stem}.json").read_text())["verdict"] == "error"
    assert (out / "good_overlay.png").is_file() and json.loads((out / "good.json").read_text())["verdict"] == "accept"
    assert earlier.read_text() == '{"verdict": "accept"}'


@pytest.mark.parametrize("bad_file", ["corrupt", "too small", "missing"], indirect=True)
def test_scan_cli_exits_1_and_writes_the_good_verdicts(bad_file, tmp_path, capsys):
    path, _ = bad_file
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    detector_model = build_autoencoder(seed=0)
    detector_model.save(model_dir / "autoencoder.keras")
    (model_dir / "record.json").write_text(json.dumps({"thresholds": {"t_mean": 1e6, "t_std": 1e6}}))
    good = _good_png(tmp_path / "good.png")
    out = tmp_path / "out"
    assert main(["scan", str(path), str(good), "--model", str(model_dir), "--out", str(out)]) == 1
    assert path.name in capsys.readouterr().out
    assert json.loads((out / "good.json").read_text())["verdict"] == "accept"


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
    assert not (out / "good_overlay.png").exists() and not list(out.glob(".*partial*"))


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
    "Lambda layer (unsafe)": (_lambda_model, "cannot be loaded.*safe_mode"),
}


@pytest.fixture
def bad_model(request, tmp_path):
    writer, pattern = BAD_MODELS[request.param]
    folder = tmp_path / "model"
    folder.mkdir()
    path = folder / "autoencoder.keras"
    if writer is not None:
        writer(path)
    (folder / "record.json").write_text(json.dumps({"thresholds": {"t_mean": 0.1, "t_std": 0.1}}))
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
    assert not (tmp_path / "out" / "good.json").exists()  # nothing scanned with a bad model
    if before is not None:
        assert path.read_bytes() == before  # the bad file is left for the user to inspect


def test_wrong_suffix_and_wrong_network(tmp_path):
    (tmp_path / "m.h5").write_bytes(b"x")
    with pytest.raises(ValueError, match="m.h5.*'.keras'"):
        load_model(tmp_path / "m.h5")
    folder = tmp_path / "cnn_in_disguise"
    folder.mkdir()
    build_cnn(seed=0).save(folder / "autoencoder.keras")
    (folder / "record.json").write_text(json.dumps({"thresholds": {"t_mean": 0.1, "t_std": 0.1}}))
    with pytest.raises(ValueError, match="expected a weldlab autoencoder.*'cnn'"):
        Detector.load(folder)


@pytest.mark.parametrize("record, pattern", [
    (None, "no record.json"),
    ("{not json", "record.json: not valid JSON"),
    ("{}", "no calibrated 'thresholds'"),
    ('{"thresholds": {"t_mean": -1, "t_std": 0.1}}', "t_mean"),
    ('{"thresholds": {"t_mean": 0.1, "t_std": NaN}}', "t_std"),
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
