import json
import warnings

import numpy as np
import pytest

from weldlab import metrics as M
from weldlab import residuals as R
from weldlab.thresholds import CalibrationWarning, ProbabilityThreshold, ResidualThresholds, from_record, threshold_at_fpr


def test_box_filter_statistics_equal_a_direct_window_computation(rng):
    r = rng.normal(0, 0.01, (2, 30, 27))
    m, s = R.kernel_statistics(r, 9)
    assert m.shape == (2, 22, 19) and s.shape == (2, 22, 19)
    for n in range(2):
        for i in (0, 7, 21):
            for j in (0, 11, 18):
                w = r[n, i:i + 9, j:j + 9]
                assert np.isclose(m[n, i, j], w.mean(), atol=1e-12)
                assert np.isclose(s[n, i, j], w.std(), atol=1e-9)
    m1, _ = R.kernel_statistics(r[0], 9)
    assert np.array_equal(m1, m[0])
    full = R.kernel_statistics(np.zeros((156, 156)))[0]
    assert full.shape == (148, 148)


def test_kernel_statistics_rejects_bad_input():
    with pytest.raises(ValueError, match="NaN"):
        R.kernel_statistics(np.full((20, 20), np.nan))
    with pytest.raises(ValueError, match="kernel"):
        R.kernel_statistics(np.zeros((5, 5)), 9)
    with pytest.raises(ValueError, match="shape"):
        R.kernel_statistics(np.zeros((2, 2, 20, 20)))


def test_patch_maxima_find_a_planted_anomaly(rng):
    r = rng.normal(0, 0.005, (5, 156, 156))
    r[3, 50:60, 70:80] -= 0.05
    mm, ms = R.patch_maxima(r, chunk=2)
    assert mm.argmax() == 3 and ms.argmax() == 3


def test_thresholds_realise_the_target_fpr_with_equal_exceedance(rng):
    a, b = rng.gamma(2, 1, 5000), rng.gamma(3, 1, 5000)
    t = ResidualThresholds.calibrate(a, b, fpr=0.001)
    assert t["resolvable"] and t["n_okay"] == 5000
    flagged = (a > t["t_mean"]) | (b > t["t_std"])
    assert flagged.mean() == t["fpr_calibration"] <= 0.001
    # equal exceedance: each statistic alone is exceeded by the same number of patches
    assert (a > t["t_mean"]).sum() == (b > t["t_std"]).sum()
    # one step lower on both would exceed the budget
    sa, sb = np.sort(a)[::-1], np.sort(b)[::-1]
    j = (a > t["t_mean"]).sum() + 1
    assert ((a > sa[j]) | (b > sb[j])).mean() > 0.001
    score = t.score(a, b)
    assert np.array_equal(score > t.cut, flagged)


def test_too_few_okay_patches_warn_loudly(rng):
    with pytest.warns(CalibrationWarning, match="cannot resolve"):
        t = ResidualThresholds.calibrate(rng.random(300), rng.random(300), fpr=0.001)
    assert not t["resolvable"] and t["fpr_calibration"] == 0.0
    with pytest.warns(CalibrationWarning):
        threshold_at_fpr(rng.random(50), 0.001)
    with pytest.warns(CalibrationWarning):
        assert not ProbabilityThreshold.calibrate(rng.random(50), 0.001).resolvable
    with pytest.raises(ValueError, match="fpr"):
        ResidualThresholds.calibrate(np.ones(5), np.ones(5), fpr=0)


def test_flagged_windows_code_which_test_fired():
    r = np.zeros((40, 40))
    r[5:14, 5:14] = 1.0            # a uniform offset: mean fires, std does not inside it
    r[25:34, 25:34:2] = 1.0        # stripes: mean ~0.55 and std ~0.5
    codes = R.flagged_windows(r, {"t_mean": 0.6, "t_std": 0.3})
    assert codes[5, 5] == 1 and codes[25, 25] == 2 and codes[0, 30] == 0
    assert set(np.unique(codes)) <= {0, 1, 2, 3}


def test_roc_auroc_and_tpr_at_fpr_against_brute_force(rng):
    neg, pos = rng.normal(0, 1, 400), rng.normal(1.5, 1, 300)
    fpr, tpr, thr = M.roc_curve(neg, pos)
    for k in (0, 10, 200, len(thr) - 2):
        assert fpr[k] == np.mean(neg > thr[k]) and tpr[k] == np.mean(pos > thr[k])
    assert fpr[-1] == tpr[-1] == 1.0 and np.all(np.diff(fpr) >= 0)
    brute = np.mean(pos[:, None] > neg[None, :]) + 0.5 * np.mean(pos[:, None] == neg[None, :])
    assert np.isclose(M.auroc(neg, pos), brute)
    assert np.isclose(np.trapezoid(tpr, fpr), brute, atol=1e-9)
    res = M.tpr_at_fpr(neg, pos, 0.01)
    assert res["fpr"] <= 0.01 and res["tpr"] == np.mean(pos > res["threshold"])
    acc, prec = M.accuracy_and_precision(fpr, tpr, 400, 300)
    assert np.isnan(prec[0]) or prec[0] == 1.0
    assert np.isclose(acc[-1], 300 / 700)
    assert M.mean_and_spread([0.9, 0.94, 0.98]) == pytest.approx((0.94, 0.04))


def test_evaluate_autoencoder_end_to_end(quick_datasets):
    """A model that reconstructs perfectly except where an indication sits must flag it."""
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    from weldlab.evaluate import evaluate_autoencoder, reconstruction_residuals

    _, ds = quick_datasets
    # "Autoencoder" that returns a 5x5 median-like local mean of the crop: okay welds
    # (smooth plus noise) leave small residuals, sharp indications leave large ones.
    x_in = keras.Input((192, 192, 1))
    crop = keras.layers.Cropping2D(18)(x_in)
    out = keras.layers.AveragePooling2D(5, strides=1, padding="same")(crop)
    model = keras.Model(x_in, out)
    r = reconstruction_residuals(model, ds["test_okay"][:3])
    assert r.shape == (3, 156, 156) and r.dtype == np.float32
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CalibrationWarning)  # quick: 120 okay patches
        res = evaluate_autoencoder(model, ds, fpr=0.01)
    t = res["thresholds"]
    assert t["n_okay"] == len(ds["val_okay"]) and t["fpr_calibration"] <= 0.01
    assert set(res["sets"]) == {"high", "mid", "low", "hollow", "dogbone", "elongated", "partial_circle", "raster"}
    for name, s in res["sets"].items():
        assert 0 <= s["tpr_calibrated"] <= 1 and s["test_fpr"] <= 0.01
        assert s["n"] == len(ds.test_sets()[name])
    assert res["sets"]["high"]["auroc"] > res["sets"]["low"]["auroc"]
    assert res["test_fpr_resolvable"]  # 300 test okay patches resolve 1 %
    with pytest.raises(ValueError, match="patches"):
        reconstruction_residuals(model, np.zeros((2, 100, 100)))


def test_threshold_objects_round_trip_through_records_and_refuse_bad_values(rng):
    a, b, c = rng.uniform(0.01, 1, (3, 2000))
    th = ResidualThresholds.calibrate(a, b, 0.001, min_std=c)
    as_json = json.loads(json.dumps(dict(th)))
    assert ResidualThresholds.from_dict(as_json) == th and set(as_json) >= {"t_mean", "t_std", "t_quiet"}
    assert th.paper.two_sided is False and "t_quiet" not in th.paper and th.paper.t_std == th.t_std
    p = ProbabilityThreshold.calibrate(rng.random(2000), 0.001)
    record = {"thresholds": dict(th.paper), "two_sided_thresholds": dict(th), "threshold": dict(p)}
    assert from_record(record, "two-sided") == th and from_record(record) == th.paper
    assert from_record({"threshold": dict(p)}) == p
    assert np.array_equal(p.flags(a), p.score(a) > p.cut)
    assert np.isfinite(th.quiet_score(0.0)) and th.score([0.0], [0.0], [0.0])[0] == th.quiet_score(0.0) > th.cut
    with pytest.raises(KeyError, match="two_sided_thresholds"):
        from_record({"thresholds": dict(th.paper)}, "two-sided")
    with pytest.raises(ValueError, match="missing t_std"):
        ResidualThresholds.from_dict({"t_mean": 0.1})
    for bad in (0.0, -1.0, float("nan"), float("inf"), True):
        with pytest.raises(ValueError, match="positive finite 't_mean'"):
            ResidualThresholds(bad, 0.1)


def test_okay_residual_table_tells_a_contrast_compressed_reconstruction_from_the_blur():
    """Issue 22: a reconstruction pulled towards mid-grey errs with the intensity (dark areas
    too bright: a negative mean residual in the darkest decile) and at the edges."""
    from weldlab.evaluate import background_residuals, okay_residual_statistics, okay_strata
    from weldlab.patches import crop

    rng = np.random.default_rng(0)
    yy = np.mgrid[:192, :192][0]
    level = 0.3 + 0.2 / (1 + np.exp(-(yy - 96) / 12.0))  # a bead edge across the patch
    x = (level + 0.005 * rng.standard_normal((20, 192, 192))).astype(np.float32)
    strata = okay_strata(x)
    blur = okay_residual_statistics(background_residuals(x), strata)
    c = crop(level)
    compressed = crop(x) - (c.mean() + 0.9 * (c - c.mean()))  # residual of a gain-0.9 reconstruction
    worse = okay_residual_statistics(compressed, strata)
    assert worse["bias_by_decile"][0] < -0.005 < 0.005 < worse["bias_by_decile"][-1]
    assert blur["max_abs_bias"] < 0.002 < worse["max_abs_bias"]
    assert worse["max_mean"]["median"] > 2 * blur["max_mean"]["median"]
    assert blur["rms_edge"] > blur["rms_flat"]  # the blur too errs most at the edge
    with pytest.raises(ValueError, match="shape"):
        okay_residual_statistics(compressed[:, :100], strata)


def test_scale_transfer_reads_a_known_filter_and_refuses_bad_input():
    """The transfer by period of a Gaussian blur follows its MTF, exp(-2 pi^2 s^2 / P^2), and
    that of a linear mix of filters the same mix of theirs."""
    from scipy import ndimage as ndi

    from weldlab.evaluate import scale_transfer
    from weldlab.patches import crop

    rng = np.random.default_rng(1)
    x = ndi.gaussian_filter(rng.standard_normal((16, 192, 192)), (0, 1, 1)).astype(np.float32)
    t = scale_transfer(x, crop(ndi.gaussian_filter(x, (0, 2, 2), mode="reflect")), edges=(8, 9, 30, 31))
    assert abs(t["8-9 px"] - np.exp(-2 * np.pi**2 * 4 / 8.5**2)) < 0.05
    assert abs(t["30-31 px"] - np.exp(-2 * np.pi**2 * 4 / 30.5**2)) < 0.05
    half = scale_transfer(x, crop(0.5 * x + 0.5 * ndi.gaussian_filter(x, (0, 2, 2), mode="reflect")),
                          edges=(8, 9, 30, 31))  # a linear mix: half the input, half the blur
    assert abs(half["8-9 px"] - (0.5 + 0.5 * np.exp(-2 * np.pi**2 * 4 / 8.5**2))) < 0.05
    assert scale_transfer(x, crop(x))["2-4 px"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="reconstruction: expected shape"):
        scale_transfer(x, crop(x)[:, :100])
    with pytest.raises(ValueError, match="edges"):
        scale_transfer(x, crop(x), edges=(8, 4))
