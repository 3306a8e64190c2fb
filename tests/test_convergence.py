"""The convergence harness's records (book/results/convergence) and the tables chapter 4 shows."""

import copy
import json

import pytest

from weldlab import convergence
from weldlab.convergence import TYPES, describe, findings, goal, indication_table, read_records, residual_table


@pytest.fixture(scope="module")
def records():
    return read_records()


def test_every_record_is_complete_and_agrees_with_its_training_record(records):
    assert {"base", "shipped"} <= {r["name"] for r in records}
    for r in records:
        assert r["quality"]["autoencoder"]["max_mean"]["median"] > 0, r["name"]
        assert set(r["indications"]["autoencoder"]) >= set(TYPES), r["name"]
        assert r["history"] and r["pairs_trained"] > 0, r["name"]
        used = r["record"].get("hyperparameters") or {}
        for key in ("okay_weight", "code_weight"):  # the weights the table names are those the run trained with
            if key in used:
                assert used[key] == r["variant"].get(key, used[key]), (r["name"], key)


def test_tables_have_the_blur_and_one_row_per_run(records):
    for table in (residual_table(records), indication_table(records)):
        rows = table.splitlines()
        assert len(rows) == 2 + 1 + len(records) and rows[2].startswith("| *blur* |")
        assert [row.split(" | ")[0][2:] for row in rows[3:]] == [r["name"] for r in records]


def test_findings_name_every_run_against_the_reference(records):
    text = findings(records)
    for r in records:
        assert f"{r['name']} (" in text or f"({describe(r['variant'])}" in text, r["name"]
    assert "base2 (sni, cosine, 3,200 pairs)" in text and "spread between two runs" in text  # base's recipe again
    with pytest.raises(ValueError, match="no recorded run named 'nothing'"):
        findings(records, reference="nothing")


def test_goal_fails_on_each_criterion_alone(records):
    passing = copy.deepcopy(records[0])
    blur = passing["quality"]["blur"]
    passing["quality"]["autoencoder"] = copy.deepcopy(blur) | {"max_abs_bias": 0.0}
    passing["indications"]["autoencoder"] = {t: {"flagged": 1.0, "auroc": 1.0} for t in TYPES}
    assert goal(passing)["all"]
    worse = {
        "tail": lambda ae, found: ae["max_mean"].update(tail=1.01 * blur["max_mean"]["tail"]),
        "median": lambda ae, found: ae["max_mean"].update(
            median=1.01 * convergence.MEDIAN_OVER_BLUR * blur["max_mean"]["median"]),
        "bias": lambda ae, found: ae.update(max_abs_bias=1.01 * convergence.MAX_BIAS),
        "indications": lambda ae, found: found[TYPES[-1]].update(flagged=0.9),
    }
    for part, spoil in worse.items():
        r = copy.deepcopy(passing)
        spoil(r["quality"]["autoencoder"], r["indications"]["autoencoder"])
        result = goal(r)
        assert not result[part] and not result["all"], part
        assert all(v for k, v in result.items() if k not in (part, "all")), part


def test_a_missing_record_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.json"):
        read_records(tmp_path, names=["nope"])


def test_describe_names_each_lever():
    plain = {"set": "sni", "schedule": "cosine"}
    assert describe(plain) == "sni, cosine"
    assert describe(plain | {"okay_weight": 10.0, "code_weight": 0.1}) == "sni, okay x10, L_reg x0.1, cosine"


def test_removal_and_ceiling_tables_read_what_the_records_measured(records):
    measured = [r for r in records if "sni_removal" in r]
    assert {"ok10_long", "shipped"} <= {r["name"] for r in measured}
    for r in measured:
        m = r["sni_removal"]
        # a perturbation adds error (an under-trained model may add more than the perturbation
        # itself: a negative share); the blur removes some of it
        assert m["okay"] < m["autoencoder"] and m["blur"] < m["identity"], r["name"]
        share = convergence.removed_share(r)
        assert share == pytest.approx(1 - m["autoencoder"] / m["identity"]) and share < 1
    rows = convergence.removal_table(records).splitlines()
    assert [row.split(" | ")[0][2:] for row in rows[2:]] == [r["name"] for r in measured]
    ceiling = convergence.ceiling_table(records).splitlines()
    assert ceiling[2].startswith("| blur, removing every indication completely |")
    assert len(ceiling) == 4 + len([r for r in records if "complete_removal" in r["indications"]])
    # complete removal is the ceiling: no run flags more of any type than it would
    for r in records:
        if "complete_removal" in r["indications"]:
            top = r["indications"]["complete_removal"]
            assert all(r["indications"]["autoencoder"][t]["flagged"] <= top[t]["flagged"] for t in TYPES), r["name"]


def test_a_run_judged_under_the_other_amplitude_reading_is_read_by_name_only(records):
    assert not any(r["judged_on"].get("amplitude_reading", "before") != "before" for r in records)
    (after,) = read_records(names=["shipped.after"])
    assert after["judged_on"]["amplitude_reading"] == "after" and after["name"] == "shipped"
    with pytest.raises(ValueError, match="judged on different patches"):
        indication_table([records[0], after])


def test_removal_by_size_is_read_labelled_and_drawn():
    import matplotlib

    matplotlib.use("Agg")
    from weldlab.convergence import plot_removal_by_size, read_removal_by_size, removal_label

    record = read_removal_by_size()
    columns = [c for c in record["rows"][0] if c not in ("sigma", "diameter")]
    assert {removal_label(record, c) for c in columns} == {"shipped", "ok10_long", "ok30_warm", "blur"}
    ax = plot_removal_by_size(record)
    sigmas = {r["sigma"] for r in record["rows"]}
    assert len(ax.lines) == len(columns) * len(sigmas) + 1  # and the receptive field's marker
    shipped = next(c for c in columns if removal_label(record, c) == "shipped")
    first = ax.lines[columns.index(shipped) * len(sigmas)]
    assert list(first.get_ydata()) == [100 * r[shipped] for r in record["rows"] if r["sigma"] == max(sigmas)]


def test_speed_records_of_both_cpus_are_read_and_tabled():
    from weldlab.convergence import read_speeds, speed_by_setting, speed_table

    records = read_speeds()
    assert [r["cpu_bf16"] for r in records] == [False, True]
    for record in records:
        speed = speed_by_setting(record)
        assert speed[("tensorflow", "auto", "1", "float32")] > 0
        assert len(speed_table(record).splitlines()) == 2 + len(record["rows"])
    failed = {"rows": [{"backend": "torch", "jit": "auto", "onednn": "1", "precision": "float32", "error": ["no torch"]}]}
    assert speed_by_setting(failed) == {} and "not measured" in speed_table(failed)


def test_scale_transfer_summary_claims_the_smoothing_only_where_the_numbers_show_it():
    from weldlab.convergence import scale_transfer_summary, scale_transfer_table

    def ae(training_set, kept):
        return {"training_set": training_set, "seed": 0, "transfer": {"16-32 px": kept}, "rms_over_noise": 1.0}

    smoother = scale_transfer_summary({"blur": {"16-32 px": 0.57}, "models": [ae("sni", 0.38), ae("D", 0.31)]})
    assert "keep 0.31-0.38" in smoother and "less than the blur (0.57)" in smoother
    assert "smoother than the blur" in smoother and "without" not in smoother
    sharper = scale_transfer_summary({"blur": {"16-32 px": 0.57}, "models": [ae("sni", 0.9), ae("none", 0.8)]})
    assert "not less than the blur" in sharper and "smoother" not in sharper
    assert "trained without perturbations keep 0.80" in sharper
    assert scale_transfer_summary({"blur": {"16-32 px": 0.57}, "models": []}) == ""
    assert scale_transfer_table({"blur": {"16-32 px": 0.57}, "models": [ae("sni", 0.38)]}).count("\n") == 3


def test_the_recorded_scale_transfer_is_read_in_order_of_period():
    from weldlab.convergence import read_scale_transfer

    record = read_scale_transfer()
    periods = [float(k.split("-")[0]) for k in record["blur"]]
    assert periods == sorted(periods) and len(record["models"]) >= 1
    assert all(list(m["transfer"]) == list(record["blur"]) for m in record["models"])


def test_scale_transfer_is_recorded_for_every_shipped_autoencoder(quick_datasets, tmp_path, monkeypatch):
    import dataclasses

    from weldlab import trained
    from weldlab.convergence import read_scale_transfer, record_scale_transfer

    cfg, ds = quick_datasets
    cfg = dataclasses.replace(cfg, results_root=str(tmp_path))
    key = ds.manifest["dataset_key"]
    # stand the shipped simulated-film AE in for one shipped for the quick datasets
    folder = trained.shipped_root("synthetic") / "ae" / "sni" / "seed0"
    monkeypatch.setattr(trained, "shipped_configurations", lambda kind, data, k: [("sni", 0)] if k == key else [])
    monkeypatch.setattr(trained, "shipped_for", lambda kind, s, seed, data, k: folder if k == key else None)
    lines = []
    record, path = record_scale_transfer(cfg, ds, n=24, log=lines.append)
    assert path.parent == tmp_path and len(lines) == 1 and "AE sni seed 0" in lines[0]
    back = read_scale_transfer(tmp_path, "synthetic", cfg.preset)
    assert [(m["training_set"], m["seed"]) for m in back["models"]] == [("sni", 0)]
    assert back["n_val_okay"] == 24 and back["dataset_key"] == key
    model = back["models"][0]
    assert list(model["transfer"]) == list(back["blur"]) == list(record["blur"])
    # the blur keeps almost nothing of the finest periods and most of the coarsest; so must any AE that works
    fine, coarse = list(back["blur"])[0], list(back["blur"])[-1]
    assert abs(back["blur"][fine]) < 0.1 < back["blur"][coarse]
    assert model["transfer"][coarse] > 0.5
    assert model["rms_over_noise"] == trained.TrainedModel.load(folder, "ae").record["convergence"]["rms_over_noise"]


def test_new_films_are_drawn_from_the_simulator_but_held_by_no_dataset(quick_datasets):
    import dataclasses

    import numpy as np

    from weldlab.datasets import load_radiographs, new_films

    cfg, _ = quick_datasets
    drawn = []
    films, patches = new_films(cfg, 3, 4, drawn=drawn)
    (third,), (third_patches,) = new_films(cfg, 3, 4, indices=[2])
    assert len(drawn) == 3 and all(0.8 <= d["crown_exponent"] <= 1.4 and d["psf"] in ("gaussian", "lorentzian")
                                   for d in drawn)
    assert [f.name for f in films] == ["simnew_0001", "simnew_0002", "simnew_0003"] and third.name == "simnew_0003"
    assert np.array_equal(third.image, films[2].image)  # a film does not depend on which others are made
    assert np.array_equal(third_patches["patches"], patches[2]["patches"])
    assert all(p["patches"].shape[1:] == (192, 192) and 0 < len(p["patches"]) <= 4 for p in patches)
    train, test = load_radiographs(cfg)
    assert not any(np.array_equal(f.image, r.image) for f in films for r in train + test)
    with pytest.raises(ValueError, match="expected 'synthetic'"):
        new_films(dataclasses.replace(cfg, data="gdxray"), 3, 4)


def test_the_calibration_on_new_films_is_recorded_film_by_film(quick_datasets, tmp_path, monkeypatch):
    import dataclasses

    import numpy as np

    from weldlab import trained
    from weldlab.convergence import bead_edge_films, new_films_summary, read_new_films, record_new_films
    from weldlab.datasets import new_films
    from weldlab.evaluate import residual_maxima
    from weldlab.thresholds import from_record

    cfg, ds = quick_datasets
    cfg = dataclasses.replace(cfg, results_root=str(tmp_path))
    key = ds.manifest["dataset_key"]
    # stand the shipped simulated-film AE in for one shipped for the quick datasets
    folder = trained.shipped_root("synthetic") / "ae" / "sni" / "seed0"
    monkeypatch.setattr(trained, "shipped_for", lambda kind, s, seed, data, k: folder if k == key else None)
    lines = []
    record_new_films(cfg, ds, n_films=3, per_film=4, log=lines.append)
    back = read_new_films(tmp_path, cfg.preset)
    shipped = trained.TrainedModel.load(folder, "ae")
    th = from_record(shipped.record)
    ae = back["detectors"]["autoencoder"]
    assert ae["thresholds"] == {"t_mean": th.t_mean, "t_std": th.t_std} and back["dataset_key"] == key
    films = np.asarray(ds["val_okay_origin"])[:, 0]
    assert [r["n"] for r in ae["validation"]] == [int(np.sum(films == f)) for f in np.unique(films)]
    assert sum(r["n"] for r in ae["test"]) == len(ds["test_okay"])
    # the counts are the thresholds' own verdicts on these patches
    _, patches = new_films(cfg, 3, 4)
    for row, p in zip(ae["new"], patches):
        mm, ms = residual_maxima(shipped.model, p["patches"])
        assert row["n"] == len(p["patches"]) and row["flagged"] == int(np.sum(th.score(mm, ms) > 1))
        assert row["by_mean"] == int(np.sum(mm > th.t_mean)) == len(row["worst"])
    assert len(back["new_films_drawn"]) == 3 and "undercut_mm" in back["new_films_drawn"][0]
    # the datasets' own films are recorded one per row of their split, as they were drawn
    from weldlab.datasets import STREAM_SIM_TEST, _simulator_settings, _stream_seed
    from weldlab.simulate import simulate_radiographs

    assert [len(back["films_drawn"][s]) for s in ("validation", "test")] == [len(ae["validation"]), len(ae["test"])]
    last = int(np.unique(np.asarray(ds["test_okay_origin"])[:, 0])[-1])
    again = []
    simulate_radiographs(cfg.sim_test_radiographs, _stream_seed(cfg.seed, STREAM_SIM_TEST), indices=[last],
                         drawn=again, **_simulator_settings(cfg))
    assert back["films_drawn"]["test"][-1] == json.loads(json.dumps(again[0]))
    edges = bead_edge_films(back)
    assert edges["films"]["new"][1] == 3 and edges["films"]["validation"][1] == len(ae["validation"])
    blur = back["detectors"]["blur"]
    assert blur["thresholds"]["t_mean"] != th.t_mean and len(blur["new"]) == 3
    # datasets built before their manifest kept what the simulator drew are refused, with what to do
    monkeypatch.setitem(ds.manifest, "radiograph_params", None)
    with pytest.raises(ValueError, match="what the simulator drew.*--rebuild"):
        record_new_films(cfg, ds, n_films=3, per_film=4, log=lines.append)
    summary = new_films_summary(ae["validation"], test_films=2)
    assert summary["films"] == len(np.unique(films))
    assert summary["fpr"] == sum(r["flagged"] for r in ae["validation"]) / len(ds["val_okay"])
    assert len(lines) == 3 and "new okay patches flagged" in lines[-1]
    with pytest.raises(FileNotFoundError, match="scripts/new_films.py"):
        read_new_films(tmp_path / "nothing", cfg.preset)


def test_the_perfect_reconstruction_record_is_read_and_tabled(tmp_path):
    record = convergence.read_ideal_reconstruction()
    assert record["data"] == "synthetic" and record["preset"] == "standard"
    for reading in ("before", "after"):
        rows = convergence.ideal_reconstruction_rows(record, reading)
        assert list(rows) == list(TYPES)
        for row in rows.values():
            assert all(0.0 <= row[c] <= 1.0 for c in convergence.IDEAL_COLUMNS)
    # read "after", every indication's median peak is its nominal amplitude
    after = convergence.ideal_reconstruction_rows(record, "after")
    assert after["hollow"]["peak_median"] == pytest.approx(0.2, abs=1e-3)
    table = convergence.ideal_reconstruction_table(record).splitlines()
    assert len(table) == 2 + len(TYPES) and table[-1].startswith("| raster | 0.101 |")
    with pytest.raises(KeyError, match="raster"):
        convergence.ideal_reconstruction_rows({"types": {}}, "before")
    with pytest.raises(FileNotFoundError, match="scripts/ideal_reconstruction.py --preset quick"):
        convergence.read_ideal_reconstruction(tmp_path, "quick")
    # the same films read by another scanner, judged by a fitted detector (chapter 9)
    other = convergence.read_ideal_reconstruction(digitisation="other")
    assert other["digitisation"] == "other" and "folder" in other["model"]
    assert convergence.ideal_reconstruction_path(tmp_path, "standard", "other").name == (
        "ideal_reconstruction_synthetic_standard_other.json")
    two = convergence.ideal_reconstruction_table(other, columns={"ideal": "perfect", "blur": "blur"})
    assert two.splitlines()[0].count("|") == 5 and "perfect (%)" in two


def test_runs_on_simulated_films_are_read_apart_from_chapter_4s(records):
    sim = read_records(data="synthetic")
    names = {r["name"] for r in sim}
    assert {"sim_shipped", "sim_ok01_warm"} <= names and not names & {r["name"] for r in records}
    assert all(r["record"]["data"] == "synthetic" for r in sim)
    assert all(r["record"]["data"] == "gdxray" for r in records)
    # judged on the same simulated patches: one blur row serves them all
    rows = residual_table(sim).splitlines()
    assert len(rows) == 3 + len(sim) and rows[2].startswith("| *blur* |")
    (warm,) = read_records(names=["sim_ok01_warm"])  # by name, whatever the data
    assert warm["variant"]["okay_weight"] == 0.1
