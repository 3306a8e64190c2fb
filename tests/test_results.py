import json
import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from weldlab import results as R  # noqa: E402
from weldlab.config import make_config  # noqa: E402


def test_paper_tables_match_the_method_page():
    # method §7 (book/method.md) holds the paper's numbers as a table; the code's transcription
    # must agree with it cell by cell (it did not: SNI partial circle read 100, the paper's 99).
    from pathlib import Path

    page = (Path(__file__).resolve().parent.parent / "book" / "method.md").read_text()
    section = page.split("## 7. Results to reproduce")[1].split("\n## ")[0]
    rows = [line.strip("| ").split(" | ") for line in section.splitlines() if line.startswith("| ")]
    head, body = rows[0], rows[2:]
    columns = [("cnn", c) for c in R.PAPER_TABLE2] + [("ae", c) for c in R.PAPER_TABLE3]
    assert len(head) == 1 + len(columns) and len(body) == len(R.TABLE_ROWS)
    for row, name in zip(body, R.TABLE_ROWS):
        assert row[0] == R.ROW_LABELS.get(name, name)
        for (kind, conf), cell in zip(columns, row[1:]):
            table = R.PAPER_TABLE2 if kind == "cnn" else R.PAPER_TABLE3
            assert table[conf][name] == int(cell), (kind, conf, name)
    for table in (R.PAPER_TABLE2, R.PAPER_TABLE3):
        for column in table.values():
            assert tuple(column) == R.TABLE_ROWS


def test_summarise_reports_mean_and_half_range():
    per_seed = [{"high": {"n": 5, "tpr_at_test_fpr": v, "tpr_calibrated": v, "auroc": 0.9}} for v in (0.5, 0.7, 0.9)]
    s = R.summarise(per_seed)["high"]["tpr_at_test_fpr"]
    assert s["mean"] == pytest.approx(0.7) and s["spread"] == pytest.approx(0.2) and s["values"] == [0.5, 0.7, 0.9]


@pytest.mark.robustness
def test_measure_write_load_and_render_a_cnn_table(quick_datasets, tmp_path):
    cfg0, ds = quick_datasets
    cfg = make_config("quick", artifacts_root=str(tmp_path / "a"), cnn_epochs=1, cnn_steps_per_epoch=1,
                      cnn_batch_size=4, progress=False)
    result, scores = R.measure_tables(cfg, ds, kinds=("cnn",), seeds=[0, 1], confs=("D", "D+circular"),
                                      log=lambda *a: None)
    table = result["tables"]["cnn"]
    assert set(table) == {"D", "D+circular"}
    assert len(table["D"]["high"]["tpr_at_test_fpr"]["values"]) == 2
    assert not result["test_fpr_resolvable"]  # 300 test okay patches cannot resolve 0.1 %
    assert scores["cnn/D/seed1/okay"].shape == (len(ds["test_okay"]),)
    path = R.write_tables(result, scores, tmp_path / "results")
    back, back_scores = R.load_tables(path)
    assert back["tables"]["cnn"]["D"]["high"]["n"] == table["D"]["high"]["n"]
    assert np.array_equal(back_scores["cnn/D/seed0/raster"], scores["cnn/D/seed0/raster"])
    assert back["git_commit"] and back["models"]["cnn"]["D"][1]["seed"] == 1
    md = R.table_markdown(back, "cnn")
    assert "| high |" in md and "D+SC paper" in md
    assert md.count("\n") == 1 + len(R.TABLE_ROWS) + len(R.SENSITIVITY_ROWS)  # measured with the sensitivity rows
    header = md.split("\n")[0].strip("| ").split(" | ")
    assert header[1:5] == ["D ours", "D paper", "D+SC ours", "D+SC paper"]  # the paper's order, though JSON sorts keys
    # Evaluating the same models again gives the identical table (determinism).
    again, again_scores = R.measure_tables(cfg, ds, kinds=("cnn",), seeds=[0, 1], confs=("D", "D+circular"),
                                           train=False, reuse=False, log=lambda *a: None)
    assert json.dumps(again["tables"], sort_keys=True) == json.dumps(result["tables"], sort_keys=True)
    assert [op["reused"] for op in again["operating_points"]["cnn"]["D"]] == [False, False]
    # The first run stored each model's evaluation; the next run reuses them, to the bit.
    assert [op["reused"] for op in result["operating_points"]["cnn"]["D"]] == [False, False]
    said = []
    reused, reused_scores = R.measure_tables(cfg, ds, kinds=("cnn",), seeds=[0, 1], confs=("D", "D+circular"),
                                             train=False, log=said.append)
    assert all(op["reused"] for ops in reused["operating_points"]["cnn"].values() for op in ops)
    assert sum("(evaluation reused)" in line for line in said) == 4
    assert json.dumps(reused["tables"], sort_keys=True) == json.dumps(result["tables"], sort_keys=True)
    assert json.dumps(reused["operating_points"], sort_keys=True) == json.dumps(
        {k: {c: [{**op, "reused": True} for op in ops] for c, ops in v.items()}
         for k, v in result["operating_points"].items()}, sort_keys=True)
    assert set(reused_scores) == set(scores)
    assert all(np.array_equal(reused_scores[k], scores[k]) for k in scores)
    # A network that changed (here one byte of its file) is evaluated again: another key.
    network = cfg.artifacts / "models" / "cnn" / "D" / "seed0" / "cnn.keras"
    key = R.evaluation_key(network, ds.manifest["dataset_key"], cfg.fpr, True)
    assert key == result["operating_points"]["cnn"]["D"][0]["evaluation"]
    changed = tmp_path / "changed.keras"
    changed.write_bytes(network.read_bytes()[:-1] + b"x")
    assert R.evaluation_key(changed, ds.manifest["dataset_key"], cfg.fpr, True) != key
    assert R.evaluation_key(network, "0123456789abcdef", cfg.fpr, True) != key
    assert R.evaluation_key(network, ds.manifest["dataset_key"], cfg.fpr, False) != key
    with pytest.raises(FileNotFoundError, match="weldlab train"):
        R.measure_tables(cfg, ds, kinds=("cnn",), seeds=[5], confs=("D",), train=False)
    # With what is available: the seeds that have models, none trained; the cells say so.
    some, _ = R.measure_tables(cfg, ds, kinds=("cnn",), seeds=[0, 5], confs=("D",), available=True,
                               log=lambda *a: None)
    assert some["tables"]["cnn"]["D"]["high"]["tpr_at_test_fpr"]["values"] == table["D"]["high"]["tpr_at_test_fpr"]["values"][:1]
    assert [op["seed"] for op in some["operating_points"]["cnn"]["D"]] == [0]
    assert "(1 seed)" in R.table_markdown(some, "cnn")
    assert not (cfg.artifacts / "models" / "cnn" / "D" / "seed5").exists()
    with pytest.raises(FileNotFoundError, match="no current model of seeds \\[5\\]"):
        R.measure_tables(cfg, ds, kinds=("cnn",), seeds=[5], confs=("D",), available=True, log=lambda *a: None)
    # A model of an older architecture is not evaluated as if it were current.
    rec_file = cfg.artifacts / "models" / "cnn" / "D" / "seed0" / "record.json"
    rec = json.loads(rec_file.read_text())
    rec_file.write_text(json.dumps({**rec, "architecture": 1}))
    from weldlab.models import ARCHITECTURE_VERSION

    with pytest.raises(FileNotFoundError, match=f"architecture v1 \\(now v{ARCHITECTURE_VERSION['cnn']}\\)"):
        R.measure_tables(cfg, ds, kinds=("cnn",), seeds=[0], confs=("D",), train=False)
    # Nor a model trained on other datasets.
    rec_file.write_text(json.dumps({**rec, "dataset_key": "0123456789abcdef"}))
    with pytest.raises(FileNotFoundError, match="datasets 0123456789abcdef"):
        R.measure_tables(cfg, ds, kinds=("cnn",), seeds=[0], confs=("D",), train=False)
    with pytest.raises(FileNotFoundError, match="weldlab tables"):
        R.load_tables(tmp_path / "nothing.json")


def test_an_autoencoder_evaluation_is_stored_and_reused_whole(tmp_path):
    from weldlab.thresholds import ResidualThresholds

    rng = np.random.default_rng(0)
    maxima = {n: (rng.random(7), rng.random(7)) for n in ("val_okay", "test_okay", "hollow")}
    thresholds = ResidualThresholds(t_mean=0.02, t_std=0.01, fpr_target=0.001)
    calls = []

    def evaluate():
        calls.append(1)
        return {"sets": {"hollow": {"n": 7, "tpr_at_test_fpr": np.float64(0.25), "auroc": float("nan")}},
                "thresholds": thresholds, "fpr_calibrated_on_test": np.float64(0.001), "sigma": 4.0,
                "scores": {n: thresholds.score(*mm) for n, mm in maxima.items()}, "maxima": maxima}

    first, reused = R.cached_evaluation("ae/sni/seed0", "0123456789abcdef", evaluate, tmp_path)
    assert not reused and (tmp_path / "ae" / "sni" / "seed0-0123456789abcdef.npz").is_file()
    again, reused = R.cached_evaluation("ae/sni/seed0", "0123456789abcdef", evaluate, tmp_path)
    assert reused and len(calls) == 1
    assert again["thresholds"] == dict(thresholds) and again["sigma"] == 4.0
    assert again["fpr_calibrated_on_test"] == 0.001 and np.isnan(again["sets"]["hollow"]["auroc"])
    assert again["sets"]["hollow"]["tpr_at_test_fpr"] == 0.25
    for n, (mm, ms) in maxima.items():  # stored as float32, as a table run's scores are
        assert np.array_equal(again["maxima"][n][0], mm.astype(np.float32))
        assert np.array_equal(again["maxima"][n][1], ms.astype(np.float32))
        assert np.array_equal(again["scores"][n], np.float32(first["scores"][n]))
    R.cached_evaluation("ae/sni/seed0", "fedcba9876543210", evaluate, tmp_path)  # another key: evaluated
    assert len(calls) == 2
    R.cached_evaluation("ae/sni/seed0", "0123456789abcdef", evaluate, None)  # no cache: always evaluated
    assert len(calls) == 3


def test_an_evaluation_key_changes_with_what_the_evaluation_is_made_from(tmp_path, monkeypatch):
    network = tmp_path / "cnn.keras"
    network.write_bytes(b"weights")
    key = R.evaluation_key(network, "0123456789abcdef", 0.001, True)
    assert key == R.evaluation_key(network, "0123456789abcdef", 0.001, True)
    assert R.evaluation_key(None, "0123456789abcdef", 0.001, True) != key  # the blur's
    assert R.evaluation_key(network, "0123456789abcdef", 0.01, True) != key
    monkeypatch.setattr(np, "__version__", "0.0")  # another NumPy computes the statistics
    assert R.evaluation_key(network, "0123456789abcdef", 0.001, True) != key


def test_find_tables_prefers_own_data_and_preset_then_the_strongest(tmp_path):
    for name in ("tables_gdxray_quick", "tables_gdxray_standard", "tables_synthetic_quick"):
        (tmp_path / f"{name}.json").write_text("{}")
    assert R.find_tables("synthetic", "quick", tmp_path).name == "tables_synthetic_quick.json"
    assert R.find_tables("gdxray", "paper", tmp_path).name == "tables_gdxray_standard.json"
    (tmp_path / "tables_synthetic_quick.json").unlink()  # then the same preset on the other data
    assert R.find_tables("synthetic", "quick", tmp_path).name == "tables_gdxray_quick.json"
    assert R.find_tables("synthetic", "paper", tmp_path).name == "tables_gdxray_standard.json"
    with pytest.raises(FileNotFoundError, match="weldlab tables"):
        R.find_tables("gdxray", "quick", tmp_path / "none")


def test_tables_cli_restricts_sets_per_model(monkeypatch, tmp_path):
    from weldlab import cli

    seen = {}

    def fake_measure(cfg, ds, kinds, seeds, train, confs, available, reuse):
        seen.update(kinds=kinds, confs=confs, train=train, reuse=reuse)
        raise FileNotFoundError("stop here")

    monkeypatch.setattr("weldlab.results.measure_tables", fake_measure)
    monkeypatch.setattr("weldlab.datasets.build_or_load", lambda cfg: None)
    assert cli.main(["tables", "--sets", "ae:sni", "cnn:D+sni", "--no-train", "--out", str(tmp_path)]) == 2
    assert seen == {"kinds": ["ae", "cnn"], "confs": {"ae": ["sni"], "cnn": ["D+sni"]}, "train": False, "reuse": True}
    assert cli.main(["tables", "--sets", "cnn:D", "--fresh", "--out", str(tmp_path)]) == 2
    assert seen["reuse"] is False
    assert cli.main(["tables", "--models", "cnn", "--sets", "ae:sni", "--out", str(tmp_path)]) == 2


def test_a_recorded_run_is_presented_from_its_record():
    from weldlab.config import RESULTS_ROOT

    runs = R.recorded_runs(RESULTS_ROOT)
    assert [r["preset"] for _, r in runs] == sorted((r["preset"] for _, r in runs), key=R.PRESET_STRENGTH.index)
    assert len(R.runs_table(runs).splitlines()) == 2 + len(runs)
    path, result = runs[0]  # the strongest: the shipped GDXray models' run
    assert (result["preset"], result["data"]) == ("standard", "gdxray") and result["test_fpr_resolvable"]
    _, scores = R.load_tables(path)
    own = R.run_notes(result, path, make_config("standard", data="gdxray"))
    assert own[0].startswith(f"**Recorded run** `{path.name}`") and len(own) == 1
    assert any("No table run is recorded for the quick preset on synthetic data; this chapter shows the recorded "
               "standard run on gdxray data" in n for n in R.run_notes(result, path, make_config("quick")))
    few = result | {"test_okay": 300, "test_fpr_resolvable": False}
    assert R.run_notes(few, path, make_config("standard", data="gdxray"))[-1].startswith(
        "**Warning: 300 test okay patches cannot resolve an FPR of 0.1 %")
    ops = sum(len(v) for kind in result["operating_points"].values() for v in kind.values())
    assert len(R.operating_points_table(result).splitlines()) == 2 + ops
    seed = result["seeds"][0]
    okay, defects = R.pooled_scores(scores, "ae", "sni", seed)
    assert okay.shape == scores[f"ae/sni/seed{seed}/okay"].shape
    assert defects.size == sum(scores[f"ae/sni/seed{seed}/{c}"].size for c in R.REAL_CLASSES)
    curves = R.detection_curve_scores(result, scores, seed)
    assert {k for k in curves if k.startswith("AE")} == {f"AE, {R.COLUMN_LABELS[c]}" for c in result["tables"]["ae"]}
    assert all(len(v) == 2 for v in curves.values())
    assert R.run_tables(result).count("AUROC:") == len(result["tables"])
    # the runs, then the strongest run other than the one shown, in full
    other_path, other = path.with_name("tables_gdxray_quick.json"), result | {"preset": "quick"}
    both = [(path, result), (other_path, other)]
    shown = R.runs_markdown(both, shown=path)
    assert shown.startswith(R.runs_table(both))
    assert f"### The strongest other run: `{other_path.name}`" in shown and R.run_tables(other) in shown
    assert R.runs_markdown([(path, result)], shown=path) == R.runs_table([(path, result)])
    assert R.table_problems(result) == []


def test_use_case_2_is_measured_only_when_named_and_summarised_apart(monkeypatch):
    from types import SimpleNamespace

    from weldlab.sets import USE_CASE_2

    asked = []

    def fake_model(cfg, ds, kind, conf, seed, train, log):
        asked.append(conf)
        return SimpleNamespace(record={"seed": seed}, model=None)

    def fake_evaluate(kind, model, datasets, fpr, sensitivity):
        sets = {r: {"n": 10, "tpr_at_test_fpr": 0.5, "tpr_calibrated": 0.5, "auroc": 0.9} for r in R.TABLE_ROWS}
        return {"sets": sets, "thresholds": {"t_mean": 1.0}, "fpr_calibrated_on_test": 0.001, "scores": {},
                "maxima": {}}

    monkeypatch.setattr("weldlab.training.current_model", fake_model)
    monkeypatch.setattr(R, "evaluate_model", fake_evaluate)
    ds = type("DS", (), {"manifest": {"dataset_key": "k"}, "counts": {},
                         "__getitem__": lambda self, name: np.zeros((1000, 2, 2))})()
    cfg = make_config("quick", data="gdxray")
    R.measure_tables(cfg, ds, kinds=("ae",), seeds=[0], confs={"ae": ["sni"]}, reuse=False, log=lambda *a: None)
    assert asked == ["sni"]
    asked.clear()
    result, _ = R.measure_tables(cfg, ds, kinds=("ae",), seeds=[0], confs={"ae": ["sni", USE_CASE_2]},
                                 reuse=False, log=lambda *a: None)
    assert asked == ["sni", USE_CASE_2] and R.table_columns("ae")[-1] == USE_CASE_2
    assert "okay + defects (use case 2) ours" in R.table_markdown(result, "ae").splitlines()[0]
    result["tables"]["ae"]["blur"] = result["tables"]["ae"]["sni"]
    lines = R.findings(result)
    assert sum("trained with" in line for line in lines) == 1  # use case 2 is not one of Table 3's columns
    assert any(line.startswith("- The autoencoder of use case 2") and "50 % of the raster" in line for line in lines)


def test_table_problems_names_the_cells_that_cannot_be_right():
    def cell(tpr, n=10):
        return {"n": n, "tpr_at_test_fpr": {"mean": tpr}}

    result = {"tables": {"ae": {"sni": {"high": cell(0.5), "mid": cell(1.2), "low": cell(float("nan"), 0)}},
                         "cnn": {"D": {"high": cell(0.3, 0)}}}}
    assert R.table_problems(result) == ["ae/sni/mid", "cnn/D/high"]
    assert R.findings({"tables": {}, "operating_points": {}}) == ["This run holds no configuration to summarise."]


def test_findings_are_computed_from_the_tables():
    def cell(tpr):
        return {"n": 10, "tpr_at_test_fpr": {"mean": tpr}}

    ae = {"blur": {r: cell(0.5) for r in R.TABLE_ROWS}, "sni": {r: cell(0.96 if r != "raster" else 0.4) for r in R.TABLE_ROWS}}
    cnn = {"D": {r: cell(0.3) for r in R.TABLE_ROWS}}
    result = {"fpr": 0.001, "tables": {"ae": ae, "cnn": cnn},
              "operating_points": {"ae": {"sni": [{"fpr_calibrated_on_test": 0.002}]}}}
    lines = R.findings(result)
    assert len(lines) == 3
    assert lines[0].startswith("- The autoencoder trained with SNI beats the blur baseline on **7 of 8** test sets "
                               "and flags at least 95 % of **4 of 5** synthetic types (high-contrast defects: 96 %")
    assert lines[1] == "- The CNN trained on D alone flags fewer than half of **5 of 5** synthetic types."
    assert lines[2].endswith("flag at most 0.20 % of the test okay patches (target 0.1 %).")
    # a run without the blur baseline still says what each autoencoder catches
    del ae["blur"]
    lines = R.findings(result)
    assert len(lines) == 3
    assert lines[0] == ("- The autoencoder trained with SNI flags at least 95 % of **4 of 5** synthetic types "
                        "(high-contrast defects: 96 %); this run has no blur baseline to compare it with.")


def test_sensitivity_rows_are_shown_after_the_main_rows_and_counted_apart():
    def cell(tpr):
        return {"n": 10, "tpr_at_test_fpr": {"mean": tpr, "spread": 0.0, "values": [tpr, tpr]}}

    rows = R.TABLE_ROWS + R.SENSITIVITY_ROWS
    ae = {"blur": {r: cell(0.5) for r in rows},
          "sni": {r: cell(0.2 if r in R.SYNTHETIC_ROWS + R.SENSITIVITY_ROWS_BY_READING["negated"] else 0.99)
                  for r in rows}}
    result = {"fpr": 0.001, "tables": {"ae": ae}, "operating_points": {}, "paper": {"ae": R.PAPER_TABLE3}}
    md = R.table_markdown(result, "ae").splitlines()
    assert len(md) == 2 + len(rows)
    assert md[-1].startswith("| raster, darker (sign flipped) | 50 | 20 (0) | 100 |")  # the paper's raster
    assert md[-6].startswith("| raster, peak after smoothing | 50 | 99 (0) | 100 |")
    # The paper's rows and the sensitivity rows apart: together they are the whole table.
    main = R.table_markdown(result, "ae", rows="main").splitlines()
    apart = R.table_markdown(result, "ae", rows="sensitivity").splitlines()
    assert main == md[:2 + len(R.TABLE_ROWS)] and apart == md[:2] + md[2 + len(R.TABLE_ROWS):]
    with pytest.raises(ValueError, match="rows='extra'"):
        R.table_markdown(result, "ae", rows="extra")
    with pytest.raises(ValueError, match="metric='tpr'"):  # not a dash in every cell
        R.table_markdown(result, "ae", metric="tpr")
    lines = R.findings(result)
    assert "beats the blur baseline on **3 of 8** test sets" in lines[0]  # the main rows only
    assert "**0 of 5** synthetic types" in lines[0]
    assert lines[2] == ("- Sensitivity check, AE SNI: its mean TPR over the 5 synthetic types is 20 % as read "
                        "literally, 99 % with the amplitude read as the peak after the smoothing and 20 % with the "
                        "sign flipped (darker); it flags at least 95 % of 0, 5 and 0 of them.")
    # A run recorded before the sign check (the "after" rows only) says what it measured.
    older = {**result, "tables": {"ae": {c: {r: v for r, v in ae[c].items()
                                             if r not in R.SENSITIVITY_ROWS_BY_READING["negated"]} for c in ae}}}
    assert len(R.table_markdown(older, "ae").splitlines()) == 2 + len(R.TABLE_ROWS) + 5
    assert R.findings(older)[2] == ("- Sensitivity check, AE SNI: its mean TPR over the 5 synthetic types is 20 % "
                                    "as read literally and 99 % with the amplitude read as the peak after the "
                                    "smoothing; it flags at least 95 % of 0 and 5 of them.")
    # A run measured without the check has the main rows only.
    plain = {"fpr": 0.001, "tables": {"ae": {c: {r: ae[c][r] for r in R.TABLE_ROWS} for c in ae}},
             "operating_points": {}, "paper": {"ae": R.PAPER_TABLE3}}
    assert len(R.table_markdown(plain, "ae").splitlines()) == 2 + len(R.TABLE_ROWS)
    assert R.table_markdown(plain, "ae", rows="sensitivity") == ""
    assert len(R.findings(plain)) == 1


def test_the_papers_findings_are_tested_on_a_run():
    def column(tpr):
        return {r: {"tpr_at_test_fpr": {"mean": tpr(r)}} for r in R.TABLE_ROWS + R.SENSITIVITY_ROWS}

    synthetic = set(R.SYNTHETIC_ROWS)
    works = {"tables": {
        "ae": {"none": column(lambda r: 0.1), "D": column(lambda r: 0.97), "sni": column(lambda r: 0.99)},
        "cnn": {"D": column(lambda r: 0.2 if r in synthetic else 0.8), "D+sni": column(lambda r: 0.9)}}}
    found = R.paper_findings(works)
    assert [f["holds"] for f in found] == [True, True, True, True]
    assert found[2]["evidence"].startswith("the SNI AE catches 5 of 5 types; the CNN misses 5 of them (hollow 20 %")
    assert all(f["reason"] == "" for f in found)
    # An AE that catches no synthetic type: findings 2 and 3 fail with their reasons, 4 has nothing to check.
    blind = {"tables": {**works["tables"], "ae": {"sni": column(lambda r: 0.0 if r in synthetic else 0.9)}}}
    found = R.paper_findings(blind)
    assert [f["holds"] for f in found] == [None, False, False, None]
    assert found[0]["evidence"] == "the run holds no AE None"
    assert found[1]["evidence"] == ("SNI: below on hollow 0 %, dogbone 0 %, elongated 0 %, partial circle 0 %, raster 0 %; "
                                    "the run holds no AE D")
    assert found[1]["reason"].endswith("the SNI AE catches 0 of 5 types")
    assert found[2]["evidence"] == "the SNI AE catches 0 of 5 types" and found[2]["reason"]
    assert found[3]["evidence"] == "no such type in this run" and found[3]["reason"]
    table = R.findings_table(found, R.paper_findings(R.paper_as_run())).splitlines()
    assert len(table) == 6 and table[2].endswith("| holds |") and "**does not hold**" in table[3]
    run = {"preset": "standard", "data": "gdxray", "seeds": [0, 1]}
    named = R.findings_table(found, run=("book/results/tables_gdxray_standard.json", run)).splitlines()
    assert named[0] == "Run `tables_gdxray_standard.json` (standard preset, gdxray data, seeds [0, 1]):"
    assert named[2:] == R.findings_table(found).splitlines()


def test_columns_trained_with_different_recipes_are_not_compared():
    def column(tpr):
        return {r: {"tpr_at_test_fpr": {"mean": tpr}} for r in R.TABLE_ROWS}

    def record(epochs):
        return {"hyperparameters": {"epochs": epochs, "steps_per_epoch": 50, "batch_size": 16}}

    run = {"tables": {"ae": {"none": column(0.9), "sni": column(0.1)}},
           "models": {"ae": {"none": [record(45)], "sni": [record(45), record(45)]}}}
    assert R.paper_findings(run)[0]["holds"] is False  # one recipe: compared, and SNI is below
    run["models"]["ae"]["sni"][1] = record(10)
    first = R.paper_findings(run)[0]
    assert first["holds"] is None
    assert first["evidence"] == ("the run's AE None and AE SNI were trained with different recipes (None: 45 x 50 x 16, "
                                 "constant rate; SNI: 10 x 50 x 16, constant rate / 45 x 50 x 16, constant rate), so "
                                 "their columns do not compare like with like")


def test_a_column_whose_seeds_differ_in_recipe_is_marked_and_named():
    def cell(tpr):
        return {"n": 10, "tpr_at_test_fpr": {"mean": tpr, "spread": 0.1, "values": [tpr - 0.1, tpr + 0.1, tpr]}}

    def record(seed, epochs, lr_patience):
        return {"seed": seed, "hyperparameters": {"epochs": epochs, "steps_per_epoch": 30, "batch_size": 32,
                                                  "lr_patience": lr_patience}}

    column = {r: cell(0.5) for r in R.TABLE_ROWS}
    result = {"fpr": 0.001, "seeds": [0, 1, 2], "tables": {"cnn": {"D": column, "D+circular": column}}, "operating_points": {},
              "paper": {"cnn": R.PAPER_TABLE2},
              "models": {"cnn": {"D": [record(s, 100, 0) for s in range(3)],
                                 "D+circular": [record(0, 100, 0), record(1, 30, 2), record(2, 30, 2)]}}}
    assert R.mixed_recipes(result) == {("cnn", "D+circular"): {"100 x 30 x 32, constant rate": [0],
                                                               "30 x 30 x 32, rate halved after 2 flat epochs": [1, 2]}}
    head = R.table_markdown(result, "cnn").splitlines()[0]
    assert "| D ours |" in head and "| D+SC ours† |" in head
    lines = R.findings(result)
    assert lines[0] == ("- † CNN D+SC mixes recipes, so its mean and spread are not one recipe's: seed 0: 100 x 30 x 32, "
                        "constant rate; seeds 1, 2: 30 x 30 x 32, rate halved after 2 flat epochs.")
    assert R.run_tables(result).endswith("\n\n" + lines[0])  # also where a run is shown as "the strongest other"
    result["models"]["cnn"]["D+circular"] = [record(s, 100, 0) for s in range(3)]
    assert R.mixed_recipes(result) == {} and R.MIXED_MARK not in R.table_markdown(result, "cnn")
