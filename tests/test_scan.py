import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import keras  # noqa: E402

from weldlab.models import ARCHITECTURE_VERSION, build_autoencoder  # noqa: E402
from weldlab.tiling import fully_convolutional, reconstruct, residual_map, scan_maps  # noqa: E402


@pytest.fixture(scope="module")
def models():
    keras.utils.set_random_seed(3)
    ae = build_autoencoder(seed=3)
    # random weights give near-constant outputs; scale kernels so the output varies
    for sub in ("encoder", "decoder"):
        for layer in ae.get_layer(sub).layers:
            if layer.weights:
                k, b = layer.get_weights()
                layer.set_weights([k * 1.5, b + 0.01])
    return ae, fully_convolutional(ae)


def test_whole_image_pass_equals_patch_by_patch(models, rng):
    ae, fc = models
    image = rng.random((300, 420)).astype(np.float32)
    single = reconstruct(fc, image, tile=4096)
    assert single.shape == (264, 384)
    tiled = reconstruct(fc, image, tile=64)  # many tiles
    assert np.abs(tiled - single).max() < 1e-6  # the tiling is seamless
    for top, left in ((0, 0), (44, 100), (108, 228)):  # patch corners on the stride-4 grid
        patch = image[top: top + 192, left: left + 192]
        direct = ae.predict(patch[None, ..., None], verbose=0)[0, ..., 0]
        whole = single[top: top + 156, left: left + 156]
        # Identical inside; within 4 px of a patch edge a lone patch's transposed
        # convolutions miss the pixels beyond it, which the whole-image pass has.
        assert np.abs(whole - direct)[4:-4, 4:-4].max() < 1e-5, (top, left)
        if top:
            assert np.abs(whole - direct)[:4].max() > 1e-4


def test_residual_and_flag_maps(models, rng):
    _, fc = models
    image = rng.random((200, 233)).astype(np.float32)
    r = residual_map(fc, image)
    assert r.shape == (164, 197)
    out = scan_maps(fc, image, {"t_mean": 0.1, "t_std": 0.1})
    assert out["flags"].shape == out["mean"].shape == (156, 189)
    with pytest.raises(ValueError, match="too small"):
        reconstruct(fc, np.zeros((150, 400), np.float32))


def test_flagged_regions_boxes_tests_and_coverage():
    from weldlab.detector import coverage, flagged_regions, flagged_values
    from weldlab.overlay import overlay

    flags = np.zeros((50, 60), np.int8)
    flags[10:13, 20:22] = 1
    flags[12, 21] = 3
    flags[30, 40] = 2
    mean = np.zeros(flags.shape)
    std = np.zeros(flags.shape)
    mean[11, 20], std[30, 40] = -0.5, 0.2
    th = {"t_mean": 0.25, "t_std": 0.05}
    regions = flagged_regions(flags, flagged_values(flags, mean, std), th)
    assert [r["box"] for r in regions] == [[48, 58, 57, 67], [28, 38, 39, 48]]  # score 4 first, then 2
    assert regions[1]["windows"] == 6 and regions[1]["tests"] == {"mean": 5, "std": 0, "both": 1}
    assert regions[1]["max_abs_mean"] == 0.5 and regions[1]["score"] == pytest.approx(2.0)
    assert regions[0]["score"] == pytest.approx(4.0)
    cov = coverage(flags, (50 + 36 + 8, 60 + 36 + 8))
    rows, cols = np.nonzero(cov)
    # every covered pixel is inside a region's box, and the boxes are fully covered
    assert rows.min() == 28 and rows.max() == 56 and cols.min() == 38 and cols.max() == 66
    assert (cov[28:39, 38:48] & 1).all() and (cov[48, 58:67] == 2).all()
    rgb = overlay(np.full(cov.shape, 0.5, np.float32), flags, regions)
    assert rgb.shape == cov.shape + (3,) and rgb.dtype == np.uint8
    assert (rgb[30, 40] != rgb[5, 5]).any() and (rgb[5, 5] == 128).all()
    empty = np.zeros((5, 5), np.int8)
    assert flagged_regions(empty, flagged_values(empty, empty, empty), th) == []


def _write_images(folder, rng):
    import imageio.v3 as iio

    base = (0.4 + 0.05 * rng.random((240, 330))).astype(np.float32)
    files = {
        "gray8.png": np.round(base * 255).astype(np.uint8),
        "gray16.tif": np.round(base * 65535).astype(np.uint16),
        "colour.png": np.repeat(np.round(base * 255).astype(np.uint8)[..., None], 3, axis=2),
        "small.png": np.zeros((100, 400), np.uint8),
    }
    for name, arr in files.items():
        iio.imwrite(folder / name, arr)
    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    return [folder / n for n in ("gray8.png", "corrupt.png", "gray16.tif", "colour.png", "small.png", "missing.png")]


@pytest.mark.robustness
def test_scan_files_survives_bad_files_and_writes_verdicts(models, tmp_path, rng):
    import json

    from weldlab.detector import Detector
    from weldlab.scan import scan_files

    ae, _ = models
    paths = _write_images(tmp_path, rng)
    lenient = Detector(ae, {"t_mean": 1e6, "t_std": 1e6}, {"model": "autoencoder", "seed": 3})
    logs = []
    res = scan_files(paths, lenient, tmp_path / "out", log=logs.append)
    verdicts = {r["image"].split("/")[-1]: r for r in res}
    assert [r["verdict"] for r in res] == ["accept", "error", "accept", "accept", "error", "error"]
    assert "corrupt.png" in verdicts["corrupt.png"]["error"]
    assert "too small" in verdicts["small.png"]["error"] and "missing.png" in verdicts["missing.png"]["error"]
    assert any("colour" in w for w in verdicts["colour.png"]["warnings"])
    assert verdicts["gray8.png"]["shape"] == [240, 330] and verdicts["gray8.png"]["model"]["seed"] == 3
    saved = json.loads((tmp_path / "out" / "gray16_tif.json").read_text())
    assert saved["verdict"] == "accept" and (tmp_path / "out" / "gray16_tif_overlay.png").is_file()
    assert json.loads((tmp_path / "out" / "corrupt_png.json").read_text())["verdict"] == "error"
    # 8- and 16-bit versions of the same picture give the same scan
    assert verdicts["gray8.png"]["max_score"] == pytest.approx(verdicts["gray16.tif"]["max_score"], rel=0.02)
    strict = Detector(ae, {"t_mean": 1e-6, "t_std": 1e-6})
    r = scan_files(paths[:1], strict, tmp_path / "strict", log=logs.append)[0]
    assert r["verdict"] == "review" and r["regions"] and r["regions"][0]["score"] > 1
    r0, c0, r1, c1 = r["regions"][0]["box"]
    assert 18 <= r0 < r1 <= 240 - 18 and 18 <= c0 < c1 <= 330 - 18
    with pytest.raises(ValueError, match="t_std"):
        Detector(ae, {"t_mean": 0.1, "t_std": float("nan")})


def test_scan_cli(models, tmp_path, rng, capsys):
    import json

    from weldlab.cli import main

    ae, _ = models
    paths = _write_images(tmp_path, rng)
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    ae.save(model_dir / "autoencoder.keras")
    (model_dir / "record.json").write_text(json.dumps({"model": "ae", "architecture": ARCHITECTURE_VERSION["ae"],
                                                       "thresholds": {"t_mean": 1.0, "t_std": 1.0}}))
    out = tmp_path / "verdicts"
    assert main(["scan", str(paths[0]), str(paths[1]), "--model", str(model_dir), "--out", str(out)]) == 2
    assert "two_sided_thresholds" in capsys.readouterr().err  # this record holds the paper's pair only
    assert main(["scan", str(paths[0]), str(paths[1]), "--model", str(model_dir), "--out", str(out),
                 "--rule", "paper"]) == 1
    assert json.loads((out / "gray8_png.json").read_text())["verdict"] == "accept"
    (model_dir / "record.json").write_text("{}")
    assert main(["scan", str(paths[0]), "--model", str(model_dir), "--out", str(out)]) == 2
    (model_dir / "record.json").unlink()
    assert main(["scan", str(paths[0]), "--model", str(model_dir), "--out", str(out)]) == 2


def test_compare_with_mask_counts_found_defects_and_false_alarms():
    from weldlab.detector import compare_with_mask, flagged_regions, flagged_values

    flags = np.zeros((100, 100), np.int8)
    flags[10, 10] = 1  # window over image pixels [28, 37) x [28, 37)
    flags[70, 70] = 2  # a false alarm
    mask = np.zeros((144, 144), bool)
    mask[30:33, 30:33] = True  # found
    mask[100:105, 20:25] = True  # missed
    mask[0:5, 0:5] = True  # in the unanalysed border: not counted
    values = flagged_values(flags, flags.astype(float), flags.astype(float))
    regions = flagged_regions(flags, values, {"t_mean": 0.5, "t_std": 0.5})
    c = compare_with_mask(regions, flags, mask)
    assert c == {"defects": 2, "defects_found": 1, "regions": 2, "regions_on_defects": 1, "false_alarm_regions": 1}
