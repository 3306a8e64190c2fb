"""The convergence harness's records (book/results/convergence) and the tables chapter 4 shows."""

import copy

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
