import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from weldlab.explorer import ThresholdExplorer  # noqa: E402
from weldlab.thresholds import ResidualThresholds  # noqa: E402


@pytest.fixture
def explorer(rng):
    def stats(n, scale):
        return rng.gamma(4, scale, n), rng.gamma(4, scale / 2, n)

    maxima = {"val_okay": stats(2000, 0.01), "okay": stats(1500, 0.01), "high": stats(300, 0.03),
              "raster": stats(50, 0.1)}
    patches = rng.random((3, 192, 192)).astype(np.float32)
    residuals = rng.normal(0, 0.05, (3, 156, 156)).astype(np.float32)
    return ThresholdExplorer(maxima, {"high": (patches, residuals)}), maxima


def test_update_gives_the_rates_of_the_or_rule(explorer):
    ex, maxima = explorer
    state, fig = ex.update("high", t_mean=0.05, t_std=0.03)
    a, b = maxima["high"]
    assert state["tpr"]["high"] == pytest.approx(np.mean((a > 0.05) | (b > 0.03)))
    a, b = maxima["okay"]
    assert state["fpr_test"] == pytest.approx(np.mean((a > 0.05) | (b > 0.03)))
    assert set(state["tpr"]) == {"high", "raster"}
    assert len(fig.axes) == 3 + 6  # ROC, bars, scatter and three example pairs
    looser, _ = ex.update("high", t_mean=0.04, t_std=0.03, draw=False)
    assert all(looser["tpr"][k] >= state["tpr"][k] for k in state["tpr"]) and looser["fpr_test"] >= state["fpr_test"]


def test_target_fpr_calibrates_on_validation_okay(explorer):
    ex, maxima = explorer
    state, fig = ex.update("raster", target_fpr=0.01)
    th = ResidualThresholds.calibrate(*maxima["val_okay"], fpr=0.01)
    assert (state["t_mean"], state["t_std"]) == (th["t_mean"], th["t_std"])
    assert state["fpr_val"] <= 0.01
    assert len(fig.axes) == 3  # no examples for this set


def test_bad_input_is_named(explorer):
    ex, maxima = explorer
    with pytest.raises(ValueError, match="test_set"):
        ex.update("nope", 0.1, 0.1)
    with pytest.raises(ValueError, match="positive"):
        ex.update("high", -1.0, 0.1)
    with pytest.raises(ValueError, match="val_okay"):
        ThresholdExplorer({"okay": maxima["okay"], "high": maxima["high"]})


def test_widget_builds_and_reacts(explorer):
    pytest.importorskip("ipywidgets")
    ex, _ = explorer
    box = ex.widget(test_set="high")
    (choose, fpr, button), (s_mean, s_std) = box.children[0].children, box.children[1].children
    assert choose.value == "high" and s_mean.value > 0 and s_std.value > 0
    before = s_mean.value
    fpr.value = 0.05
    button.click()
    assert s_mean.value < before  # a larger target FPR gives lower thresholds
