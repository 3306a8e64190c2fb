"""The models shipped in weldlab/pretrained: complete, loadable, and used by default."""

import json
import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from weldlab.sets import SHIPPED  # noqa: E402
from weldlab.trained import MODEL_FILES, load_pretrained, pretrained_dir  # noqa: E402

SEEDS = (0, 1, 2)


@pytest.mark.parametrize("kind", sorted(SHIPPED))
def test_three_seeds_are_shipped_with_records_and_thresholds(kind):
    training_set, filename = SHIPPED[kind], MODEL_FILES[kind]
    for seed in SEEDS:
        folder = pretrained_dir(kind, seed)
        assert (folder / filename).stat().st_size < 5e6  # small enough to ship
        shipped = load_pretrained(kind, seed)
        model, record = shipped.model, shipped.record
        assert shipped.kind == kind and shipped.is_current()
        assert model.count_params() == (41_186 if kind == "ae" else 223_221)
        assert record["seed"] == seed and record["training_set"] == training_set
        assert record["data"] == "gdxray" and record["preset"] == "standard"
        for key in ("epochs", "wall_seconds", "patches_per_second", "backend", "git_commit", "source"):
            assert record[key], key
        if kind == "ae":
            th = shipped.thresholds()
            assert th.resolvable and th.n_okay >= 1000 and th.t_mean > 0 and th.t_std > 0
            assert shipped.thresholds("two-sided").t_quiet > 0
        else:
            assert 0 < shipped.thresholds().probability < 1
        assert len(shipped.history) == record["epochs"]
    with pytest.raises(FileNotFoundError, match="no shipped"):
        pretrained_dir(kind, 7)


def test_chapters_use_shipped_models_outside_the_quick_preset(tmp_path):
    from weldlab.config import make_config
    from weldlab.training import chapter_models

    cfg = make_config("standard", data="gdxray", artifacts_root=str(tmp_path))
    shipped, = chapter_models(cfg, None, "ae", "sni")  # no datasets needed: nothing is trained
    assert shipped.record["thresholds"] and shipped.model.count_params() == 41_186
    assert not any(tmp_path.iterdir())


def test_shipped_detector_flags_defects_on_an_unseen_gdxray_film(gdxray):
    from weldlab.detector import Detector, compare_with_mask, scan_image

    film = next(r for r in gdxray if r.name == "W0001_0004")  # a test film: no model trained on it
    detector = Detector.load()
    verdict, maps = scan_image(detector, film.image, name=film.name)
    c = compare_with_mask(verdict.regions, maps["flags"], film.mask)
    assert verdict.decision == "review" and c["defects_found"] >= 1 and verdict.of_kind("indication")
    assert verdict.rule == "two-sided"
    assert verdict.thresholds == {k: detector.record["two_sided_thresholds"][k] for k in ("t_mean", "t_std", "t_quiet")}
    assert not verdict.of_kind("input")  # a film of the training series is within the training films' ranges


def test_scan_cli_defaults_to_the_shipped_detector(tmp_path):
    import imageio.v3 as iio

    from weldlab.cli import main
    from weldlab.simulate import simulate_radiograph

    r = simulate_radiograph(np.random.default_rng(0), 300, 500)
    iio.imwrite(tmp_path / "film.png", np.round(r.image * 255).astype(np.uint8))
    assert main(["scan", str(tmp_path / "film.png"), "--out", str(tmp_path / "out")]) == 0
    v = json.loads((tmp_path / "out" / "film_png.json").read_text())
    assert v["verdict"] in ("accept", "review") and v["model"]["training_set"] == "sni" and v["model"]["seed"] == 0


def test_simulated_film_autoencoder_is_shipped_and_used_in_every_preset_on_simulated_data(tmp_path):
    from weldlab.config import make_config
    from weldlab.trained import SHIPPED_PRESETS, shipped_fits

    # only seed 0 of each is shipped for the simulated films
    with pytest.raises(FileNotFoundError, match="trained on synthetic data"):
        pretrained_dir("cnn", 1, data="synthetic")
    assert shipped_fits(make_config("quick"), "cnn", "D+sni", 1) is None
    for kind, training_set in (("ae", "sni"), ("cnn", "D+sni")):
        shipped = load_pretrained(kind, 0, data="synthetic")
        record = shipped.record
        assert record["data"] == "synthetic" and record["preset"] == "standard" and shipped.is_current()
        assert (shipped.folder / MODEL_FILES[kind]).stat().st_size < 5e6
        assert len(shipped.history) == record["epochs"] and record["source"].startswith("trained by `weldlab train")
        if kind == "ae":
            assert shipped.thresholds().resolvable and shipped.thresholds("two-sided").t_quiet > 0
            assert record["input_ranges"]["patch"]["typicality"]["calibrated"] == "own film left out"
        else:  # far from chance on the held-out validation patches (chance: ln 2 = 0.693)
            assert shipped.thresholds().resolvable and record["best_val_loss"] < 0.35
        for preset in SHIPPED_PRESETS["synthetic"]:
            cfg = make_config(preset, data="synthetic", artifacts_root=str(tmp_path))
            assert shipped_fits(cfg, kind, training_set, 0) == shipped.folder
        # GDXray's quick chapters train their own; its shipped models are elsewhere
        assert shipped_fits(make_config("quick", data="gdxray"), kind, training_set, 0) is None
        assert pretrained_dir(kind, 0) != shipped.folder


def test_table_runs_use_a_shipped_model_made_from_the_same_datasets(tmp_path):
    # `weldlab tables --no-train` on a fresh clone: the models shipped for the preset's
    # datasets stand in for the run's own, whatever their configuration.
    from types import SimpleNamespace

    from weldlab.config import make_config
    from weldlab.trained import shipped_for
    from weldlab.training import current_model

    key = load_pretrained("cnn", 0).record["dataset_key"]
    assert shipped_for("cnn", "D+sni", 0, "gdxray", key) == pretrained_dir("cnn", 0)
    assert shipped_for("cnn", "D+sni", 0, "gdxray", "0123456789abcdef") is None  # other datasets
    assert shipped_for("cnn", "D+sni", 0, "synthetic", key) is None
    cfg = make_config("standard", data="gdxray", artifacts_root=str(tmp_path))
    said = []
    used = current_model(cfg, SimpleNamespace(manifest={"dataset_key": key}), "cnn", "D+sni", 0, train=False,
                         log=said.append)
    assert used.folder == pretrained_dir("cnn", 0) and "the shipped model" in said[0]
    with pytest.raises(FileNotFoundError, match="weldlab train"):  # nothing shipped for these datasets
        current_model(cfg, SimpleNamespace(manifest={"dataset_key": "0123456789abcdef"}), "cnn", "D+sni", 0,
                      train=False)


def test_every_shipped_classifier_has_the_constant_rate_recipe():
    # README and chapter 7: every shipped CNN (D, D+SC, D+SC+SPC and D+SNI, three seeds each)
    # is trained at a constant learning rate of 1e-3 for up to 100 epochs (patience 15).
    from weldlab.trained import TrainedModel, shipped_configurations, shipped_for

    key = load_pretrained("cnn", 0).record["dataset_key"]
    shipped = shipped_configurations("cnn", "gdxray", key)
    sets = ("D", "D+circular", "D+circular+partial_circle", "D+sni")
    assert shipped == sorted((s, seed) for s in sets for seed in SEEDS)
    recipes = set()
    for training_set, seed in shipped:
        trained = TrainedModel.load(shipped_for("cnn", training_set, seed, "gdxray", key), "cnn")
        recipes.add(json.dumps(trained.record["hyperparameters"], sort_keys=True))
        assert len(trained.history) == trained.record["epochs"] <= 100, (training_set, seed)
        assert all(e["learning_rate"] == pytest.approx(1e-3) for e in trained.history), (training_set, seed)
    assert len(recipes) == 1, recipes  # one recipe for all twelve
    recipe = json.loads(recipes.pop())
    assert recipe["learning_rate"] == 1e-3 and recipe["lr_patience"] is None
    assert recipe["epochs"] == 100 and recipe["patience"] == 15
