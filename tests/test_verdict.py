"""The verdict as data: reasons with fields, sentences rendered from them, JSON both ways."""

import json
import math

import pytest

from weldlab.screening import STATISTIC_LABELS
from weldlab.verdict import REASON_KINDS, Reason, Verdict


def test_an_input_reason_says_which_side_of_which_range():
    below = Reason("input", statistic="noise_std", value=0.001, range=(0.0029, 0.0074))
    above = Reason("input", statistic="clipped", value=0.5, range=(None, 0.01))
    unmeasured = Reason("input", statistic="noise_lag1", value=float("nan"), range=(0.5, 0.9))
    assert (below.side, above.side, unmeasured.side) == ("below", "above", "unmeasured")
    assert below.text() == (f"{REASON_KINDS['input']}: {STATISTIC_LABELS['noise_std']} 0.001 below the training "
                            "range 0.0029 to 0.0074")
    assert above.explanation() == f"{STATISTIC_LABELS['clipped']} 0.5 above the training range (at most 0.01)"
    assert unmeasured.explanation().endswith("cannot be measured (no unclipped pixels)")


def test_a_region_reason_names_its_count_and_strongest_box():
    r = Reason("indication", value=3.2, box=(40, 50, 70, 90), regions=2)
    assert r.side is None
    assert r.text() == f"{REASON_KINDS['indication']}: 2 regions, the strongest at rows 40-70, columns 50-90"
    assert Reason("quiet", value=1.5, box=(0, 0, 9, 9), regions=1).explanation().startswith("1 region,")


@pytest.mark.parametrize("kwargs, match", [
    ({"kind": "defect"}, "kind: expected one of"),
    ({"kind": "input"}, "needs the statistic"),
    ({"kind": "quiet", "value": 2.0}, "needs the strongest region's box"),
])
def test_a_reason_missing_what_it_needs_is_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Reason(**kwargs)


def test_a_verdict_decides_from_its_reasons_and_round_trips_through_json():
    reasons = (Reason("input", statistic="noise_lag1", value=float("nan"), range=(0.5, 0.9)),
               Reason("indication", value=2.5, box=(20, 20, 60, 60), regions=1))
    region = {"reason": "indication", "box": [20, 20, 60, 60], "score": 2.5}
    v = Verdict("f.png", (200, 300), reasons, rule="paper", max_score=2.5, regions=(region,),
                analysed_box=(18, 18, 182, 282), thresholds={"t_mean": 0.02, "t_std": 0.03}, seconds=0.1)
    assert v.decision == "review" and v.of_kind("input") == [reasons[0]]
    assert v.lines() == ["REVIEW (paper rule)"] + [r.text() for r in reasons]
    d = json.loads(json.dumps(v.to_dict()))  # no NaN survives: an unmeasured value is null
    assert d["verdict"] == "review" and d["reasons"][0]["value"] is None and "input" not in d
    back = Verdict.from_dict(d)
    assert math.isnan(back.reasons[0].value) and back.reasons[1] == reasons[1] and back.regions == (region,)
    assert Verdict("g.png", (200, 200)).decision == "accept"
    with pytest.raises(ValueError, match="disagrees with its reasons"):
        Verdict.from_dict(d | {"verdict": "accept"})
    with pytest.raises(TypeError, match="Reason objects"):
        Verdict("h.png", (1, 1), ("a sentence",))
    with pytest.raises(ValueError, match="rule: expected"):
        Verdict("h.png", (1, 1), rule="strict")
