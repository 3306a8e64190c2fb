"""weldlab fit: a detector from a user's own films (weldlab.fit, weldlab.radiographs.load_films)."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from weldlab.fit import fit_detector, split_films  # noqa: E402
from weldlab.radiographs import RadiographError, boxes_mask, load_films, read_boxes  # noqa: E402

#: A fit in seconds: a few patches and two training steps (the numbers mean nothing).
TINY = {"n_sni": 100, "ae_epochs": 2, "ae_steps_per_epoch": 1, "ae_batch_size": 4, "n_train_okay": 24,
        "n_val_okay": 12, "n_train_defect": 8, "progress": False}


def _write(path, image, bits=16):
    import imageio.v3 as iio

    scale, dtype = (65535, np.uint16) if bits == 16 else (255, np.uint8)
    iio.imwrite(path, np.round(np.asarray(image) * scale).astype(dtype))


@pytest.fixture(scope="module")
def family(tmp_path_factory):
    """Four simulated 16-bit films of 400 x 800 px with their defect masks."""
    from weldlab.simulate import simulate_radiographs

    root = tmp_path_factory.mktemp("family")
    (root / "films").mkdir()
    (root / "masks").mkdir()
    films = simulate_radiographs(4, 11, height=400, width=800, defects_per_kpx=2.0)
    for r in films:
        _write(root / "films" / f"{r.name}.png", r.image)
        _write(root / "masks" / f"{r.name}.png", r.mask.astype(float), bits=8)
    return root, sorted((root / "films").glob("*.png")), films


def test_a_fit_resumes_and_writes_a_detector_that_scan_uses(family, tmp_path, monkeypatch):
    import weldlab.datasets
    from weldlab.cli import main
    from weldlab.detector import Detector

    builds = []
    build = weldlab.datasets.build_family_datasets
    monkeypatch.setattr(weldlab.datasets, "build_family_datasets", lambda *a, **k: builds.append(1) or build(*a, **k))
    root, paths, films = family
    out, lines = tmp_path / "detector", []
    with pytest.raises(KeyboardInterrupt):
        fit_detector(paths, out, masks=root / "masks", overrides=TINY, verbose=0, log=lines.append, stop_after=1)
    assert not out.exists() and (tmp_path / "detector.work" / "model").is_dir()  # nothing half-written
    assert (tmp_path / "detector.work" / "datasets" / "manifest.json").is_file()
    fitted = fit_detector(paths, out, masks=root / "masks", overrides=TINY, verbose=0, log=lines.append)
    assert any(line.startswith("resuming model after epoch 1") for line in lines)
    assert len(builds) == 1  # the patch sets of the interrupted fit were reused
    assert not (tmp_path / "detector.work").exists()
    assert sorted(p.name for p in out.iterdir()) == ["autoencoder.keras", "history.json", "record.json"]
    record, fit = fitted.record, fitted.record["fit"]
    assert fitted.record["epochs"] == 2 and len(fitted.history) == 2
    assert record["training_set"] == "D+sni"  # masks give real-defect perturbations
    assert fit["bit_depth"] == 16 and fit["annotations"] == "masks" and len(fit["annotated"]) == 4
    assert len(fit["training_films"]) == 3 and fit["calibration_films"] == [r.name for r in films
                                                                           if r.name not in fit["training_films"]]
    assert fit["start_from"].endswith("seed0") and fit["recipe"]["learning_rate"] == 2e-4
    assert record["hyperparameters"]["dropout_epochs"] == 0 and record["hyperparameters"]["okay_weight"] == 10
    assert record["start_from"]["training_set"] == "sni"
    assert set(record["input_ranges"]["film"]["leave_one_film_out"]) >= {"noise_std", "p1", "bead_contrast"}
    assert fit["held_out_films_in_range"] + len(fit["held_out_films_outside_ranges"]) == 1
    detector = Detector.load(out)
    assert detector.rule == "two-sided" and detector.record["fit"]["family_key"] == fit["family_key"]
    assert main(["scan", str(paths[0]), "--model", str(out), "--out", str(tmp_path / "scans")]) == 0
    verdict = json.loads(next((tmp_path / "scans").glob("*.json")).read_text())
    assert verdict["model"]["source"].startswith("weldlab fit: D+sni autoencoder")


def test_bad_films_are_refused_before_anything_is_written(family, tmp_path):
    from weldlab.geometry import SAMPLING_MIN_SIDE

    root, paths, films = family
    out = tmp_path / "detector"

    def refused(match, films_=None, **kw):
        with pytest.raises((ValueError, OSError), match=match):
            fit_detector(films_ or paths, out, overrides=TINY, verbose=0, log=lambda *a: None, **kw)
        assert not out.exists() and not (tmp_path / "detector.work").exists()

    eight = tmp_path / "eight.png"
    _write(eight, films[0].image, bits=8)
    refused(r"eight.png: is 8-bit but .*sim_0001.png is 16-bit; expected films of one bit depth",
            [paths[0], eight, *paths[1:]])
    refused("a fit needs at least 3", paths[:2])
    small = tmp_path / "small"
    small.mkdir()
    _write(small / "sim_0002.png", np.zeros((100, 100)), bits=8)
    refused(r"small/sim_0002.png: mask shape \(100, 100\) does not match image shape \(400, 800\)", masks=small)
    tiny = tmp_path / "tiny.png"
    _write(tiny, films[0].image[:SAMPLING_MIN_SIDE - 1])
    refused(f"tiny.png: image of {SAMPLING_MIN_SIDE - 1}x800 px is too small", [tiny, *paths])
    refused("distinct names", [paths[0], tmp_path / "x" / paths[0].name, *paths[1:]])
    full = tmp_path / "full"
    full.mkdir()
    for p in paths:
        _write(full / p.name, np.ones((400, 800)), bits=8)  # every pixel a defect: no okay area
    with pytest.raises(ValueError, match=r"the training films hold 0 okay 192 px patches \(sim_0001: 0"):
        fit_detector(paths, out, masks=full, overrides=TINY, verbose=0, log=lambda *a: None)
    assert not out.exists() and not (tmp_path / "detector.work").exists()
    out.mkdir()
    (out / "thesis.pdf").write_text("years of work")
    with pytest.raises(ValueError, match="holds files weldlab did not write"):
        fit_detector(paths, out, overrides=TINY, verbose=0, log=lambda *a: None)
    assert [p.name for p in out.iterdir()] == ["thesis.pdf"] and not (tmp_path / "detector.work").exists()


def test_boxes_in_gdxray_format_cover_its_masks(gdxray_root):
    folder = gdxray_root / "Welding"
    boxes = read_boxes(folder / "W0001" / "ground_truth.txt")
    assert sorted(boxes) == list(range(1, 11))
    films, info = load_films([folder / "W0001" / "W0001_0002.png"], boxes=folder / "W0001" / "ground_truth.txt")
    from weldlab.radiographs import load_mask

    mask = load_mask(folder / "W0002" / "W0002_0002.png", films[0].image.shape)
    assert mask.any() and not (mask & ~films[0].mask).any()  # every marked pixel inside a box
    assert films[0].mask.mean() < 0.02 and info["annotated"] == ["W0001_0002"] and "3" in info["unused"]


def test_box_files_and_names_that_cannot_be_used(tmp_path):
    f = tmp_path / "ground_truth.txt"
    f.write_text("# film x1 x2 y1 y2\n2 1.5 3.5 0.5 1.5\n\n")
    assert read_boxes(f) == {2: [(0, 1, 1, 3)]}
    assert boxes_mask(read_boxes(f)[2], (4, 5)).sum() == 2
    f.write_text("2 1.5 3.5 0.5 1.5\n2 9 3 0 1\n")
    with pytest.raises(RadiographError, match="ground_truth.txt, line 2: '2 9 3 0 1' is not a box"):
        read_boxes(f)
    f.write_text("1 1 2 1 2\n")
    _write(tmp_path / "weld.png", np.full((200, 200), 0.5))
    with pytest.raises(RadiographError, match="weld.png: has no number at the end of its name"):
        load_films([tmp_path / "weld.png"], boxes=f)


def test_split_holds_a_quarter_of_the_films_out():
    assert [len(part) for part in split_films(3)] == [2, 1]
    assert [len(part) for part in split_films(8)] == [6, 2]
    assert [len(part) for part in split_films(13, seed=4)] == [9, 4]
    assert split_films(8, seed=1) != split_films(8, seed=2)


def test_each_film_lies_inside_the_range_of_the_others():
    from weldlab.screening import check_inputs, input_ranges

    rng = np.random.default_rng(5)
    stats = [{"noise_std": rng.uniform(0.003, 0.012), "noise_lag1": rng.uniform(0.3, 0.9),
              "p1": rng.uniform(0.0, 0.4), "p99": rng.uniform(0.5, 1.0), "clipped": rng.uniform(0, 0.05),
              "levels": rng.uniform(50, 250), "noise_lag2": 0.5, "noise_skew": 0.0} for _ in range(24)]
    films = np.repeat(np.arange(6), 4)
    for s in stats[-4:]:  # one film with three times the grain and brighter: beyond the fixed margins
        s["noise_std"], s["p99"] = 3 * s["noise_std"] + 0.04, s["p99"] + 0.2
    fixed = input_ranges(None, "x", statistics=stats)
    fair = input_ranges(None, "x", statistics=stats, groups=films)
    assert fair["leave_one_film_out"]["noise_std"]["film"] == 5
    for f in range(6):  # the margins as used, on the other films' extremes
        others = input_ranges(None, "x", statistics=[s for s, g in zip(stats, films) if g != f])
        for name, (kind, m) in fair["margins"].items():
            lo, hi = others["observed"][name]
            others["ranges"][name] = {"factor": [lo / m, hi * m], "add": [lo - m, hi + m],
                                      "upper": [None, hi + m], "lower": [lo / m, None]}[kind]
        mine = [s for s, g in zip(stats, films) if g == f]
        assert not any(check_inputs(mine, others)), f
    for name, (lo, hi) in fixed["ranges"].items():  # only ever wider than the fixed margins
        assert fair["ranges"][name][0] is None or fair["ranges"][name][0] <= lo + 1e-12
        assert fair["ranges"][name][1] is None or hi is None or fair["ranges"][name][1] >= hi - 1e-12


def test_recorded_fits_render_as_one_table():
    from weldlab.fit import HELD_OUT_ROWS, held_out_table, read_fit_records

    results = Path(__file__).resolve().parent.parent / "book" / "results"
    fits = read_fit_records(results, ["quick8"])
    lines = held_out_table(fits + fits).splitlines()
    assert len(lines) == 2 + len(HELD_OUT_ROWS) + 1 and lines[0].count("fit: 8 films") == 2
    shipped = fits[0]["held_out"]["patches"]["okay"]["shipped"]["detector"]
    assert lines[2].startswith(f"| okay patches ({fits[0]['held_out']['patches']['okay']['shipped']['n']}) "
                               f"| {100 * shipped:.1f} % |")
    with pytest.raises(FileNotFoundError, match="scripts/fit_family.py makes them"):
        read_fit_records(results, ["never"])


def test_a_recorded_family_films_parameters_are_those_it_was_simulated_with():
    from weldlab.fit import films_drawn, read_fit_records
    from weldlab.simulate import simulate_radiographs

    results = Path(__file__).resolve().parent.parent / "book" / "results"
    (record,) = read_fit_records(results, ["quick8"])
    drawn = []
    simulate_radiographs(3, record["seeds"]["films"], *record["size"], drawn=drawn)
    got = films_drawn(record, ["sim_0003", "sim_0001"])
    assert list(got) == ["sim_0003", "sim_0001"]
    assert got["sim_0003"] == drawn[2] and got["sim_0001"] == drawn[0] and drawn[0] != drawn[2]


def test_the_command_line_refuses_bad_input_in_one_line(family, tmp_path, capsys):
    from weldlab.cli import main

    root, paths, _ = family
    assert main(["fit", *map(str, paths[:2]), "--out", str(tmp_path / "d")]) == 2
    assert capsys.readouterr().err.strip().startswith("weldlab: error: films: 2 given; a fit needs at least 3")
    assert main(["fit", *map(str, paths), "--out", str(tmp_path / "d"), "--masks", str(tmp_path / "none")]) == 2
    assert "--masks" in capsys.readouterr().err and not (tmp_path / "d").exists()
