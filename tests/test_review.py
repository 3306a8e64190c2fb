"""Who sends an input to a human (weldlab.review): the reviewers' scores and rates, their
tables and figures, and chapter 10's reviewers bundled."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from weldlab.review import (REVIEWERS, Reviewers, below_goal, cnn_film_score, detection_rates,  # noqa: E402
                            flagged_table, plot_review_rates, review_rate_table, review_rates, review_scores)


@pytest.fixture(scope="module")
def shipped():
    from weldlab.detector import Detector

    return Detector.load()


def test_detection_rates_counts_scores_above_one():
    inputs = {"a": np.zeros((4, 192, 192)), "b": np.ones((2, 192, 192))}
    rates = detection_rates(inputs, {"ae": lambda x: x.mean(axis=(1, 2)) * 3})
    assert rates == {"a": {"n": 4, "ae": 0.0}, "b": {"n": 2, "ae": 1.0}}


def test_review_rates_combine_the_reviewers(shipped):
    paper = shipped.record["thresholds"]
    rng = np.random.default_rng(5)
    grainy = np.clip(0.45 + rng.normal(0, 0.005, (2, 192, 192)), 0, 1).astype(np.float32)
    flat = np.full((2, 192, 192), 0.45, np.float32)
    assert shipped.patch_ranges is shipped.record["input_ranges"]["patch"]  # Detector.load fills them
    scores = review_scores(np.concatenate([grainy, flat]), shipped, paper)
    assert set(scores) == set(REVIEWERS) - {"cnn"}
    # the detector column is the Detector's own patch rule: the two-sided rule or the input checks
    own = shipped.patch_scores(np.concatenate([grainy, flat]))
    assert np.array_equal(scores["detector"], own["detector"])
    assert np.array_equal(own["detector"], np.maximum(scores["ae_two_sided"], scores["inputs"]))
    assert (scores["ae_two_sided"][2:] > 1).all() and (scores["ae_paper"][2:] <= 1).all()  # flat: too quiet only
    rates = review_rates({"flat": flat}, shipped, paper)
    assert rates == {"flat": {"n": 2, "inputs": 1.0, "ae_paper": 0.0, "ae_two_sided": 1.0, "detector": 1.0}}


def test_cnn_film_score_tiles_the_whole_image():
    import keras

    seen = []

    class Spy(keras.Model):
        def call(self, x):
            seen.append(tuple(x.shape))
            return keras.ops.mean(x, axis=(1, 2))

    image = np.zeros((300, 500), np.float32)
    image[-10:, -10:] = 1.0  # only the bottom-right corner is bright: the last tile must reach it
    assert cnn_film_score(Spy(), image, threshold=0.001) > 1
    assert sum(s[0] for s in seen) == 2 * 3  # rows 0, 108 and columns 0, 192, 308
    with pytest.raises(ValueError, match="192 px"):
        cnn_film_score(Spy(), np.zeros((100, 500)), 0.5)


def test_rate_table_and_goal_read_the_rates():
    rates = {"blank": {"n": 20, "inputs": 1.0, "ae_paper": 0.25, "detector": 1.0},
             "noised": {"n": 10, "inputs": 0.0, "ae_paper": 0.5, "detector": 0.9}}
    lines = review_rate_table(rates).splitlines()
    assert lines[0] == "| input | n | " + " | ".join(f"{REVIEWERS[k]} (%)" for k in ("inputs", "ae_paper", "detector")) + " |"
    assert lines[2:] == ["| blank | 20 | 100.0 | 25.0 | 100.0 |", "| noised | 10 | 0.0 | 50.0 | 90.0 |"]
    assert below_goal(rates) == {"noised": 0.9}
    assert below_goal(rates, kinds=["blank"]) == {} and below_goal(rates, reviewer="ae_paper", goal=0.3) == {"blank": 0.25}


def test_flagged_table_sets_autoencoders_side_by_side():
    def ev(fpr, high):
        return {"fpr_calibrated_on_test": fpr, "sets": {"high": {"tpr_calibrated": high}}}

    table = flagged_table({"A": (ev(0.001, 0.5), {"blank": 1.0}), "B": (ev(0.0, 0.25), {"blank": 0.0})}, ["blank"])
    assert table.splitlines() == ["| test set | A (%) | B (%) |", "| --- | ---: | ---: |",
                                  "| okay, test (false positives) | 0.1 | 0.0 |", "| high | 50 | 25 |",
                                  "| unexpected: blank | 100 | 0 |"]


def test_review_rates_are_drawn_one_bar_per_kind_and_reviewer():
    rates = {"blank": {"ae_paper": 0.2, "detector": 1.0}, "noised": {"ae_paper": 0.0, "detector": 0.5}}
    ax = plot_review_rates(rates, reviewers=("ae_paper", "detector"))
    heights = [p.get_height() for p in ax.patches]
    assert heights == pytest.approx([20, 0, 100, 50])
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [REVIEWERS["ae_paper"], REVIEWERS["detector"]]


def test_grain_statistics_are_drawn_beside_the_training_patches(shipped, rng):
    from weldlab.figures import plot_grain_statistics

    typicality = shipped.record["input_ranges"]["patch"]["typicality"]
    patches = np.clip(0.45 + rng.normal(0, 0.01, (3, 192, 192)), 0, 1).astype(np.float32)
    ax = plot_grain_statistics(typicality, [("noise", patches, "C1", "o")])
    reference, mine = ax.collections
    assert len(reference.get_offsets()) == typicality["n"] and len(mine.get_offsets()) == 3
    assert ax.get_xscale() == "log"


def test_reviewers_bundle_the_detector_and_the_cnn(shipped):
    from weldlab.detector import CALIBRATION_KEYS, Detector
    from weldlab.trained import TrainedModel, pretrained_dir

    cnn = TrainedModel.load(pretrained_dir("cnn"), "cnn")
    ae = TrainedModel.load(pretrained_dir("ae"), "ae")
    cal = {k: shipped.record[k] for k in CALIBRATION_KEYS}
    reviewers = Reviewers(ae, cnn, shipped, cal, 0.5)
    flat = np.full((2, 192, 192), 0.45, np.float32)
    # the bundle's rates are its detector's, as a detector made from its calibration gives them
    made = Detector.from_calibration(ae.model, cal)
    assert reviewers.rates({"flat": flat}) == review_rates({"flat": flat}, made, cal["thresholds"], cnn.model, 0.5)
    assert set(reviewers.rates({"flat": flat})["flat"]) == {"n", *REVIEWERS}
    film = np.full((200, 400), 0.45, np.float32)
    assert reviewers.films({"grey": film})["grey"]["verdict"] == "review"  # too quiet, unlike a film
    assert reviewers.cnn_learned == (cnn.record.get("best_val_loss", 0) <= 0.68)
    assert f"t_mean {cal['thresholds']['t_mean']:.4f}" in reviewers.summary()


def test_films_outside_the_ranges_and_told_unusual_are_read_from_the_reasons():
    from weldlab.review import outside_ranges, told_unusual
    from weldlab.verdict import Reason

    bead = Reason("input", statistic="bead_contrast", value=0.0, range=(0.1, None))
    p99 = Reason("input", statistic="p99", value=0.95, range=(0.5, 0.9))

    def review(*reasons, quiet=0):
        return {"verdict": "review", "reasons": reasons, "regions": {"indication": 0, "quiet": quiet}}

    reviews = {"as it is": review(p99), "inverted": review(p99, bead), "noised": review(p99, quiet=2),
               "blurred": review(p99), "plain": review()}
    assert outside_ranges(reviews) == ["as it is", "inverted", "noised", "blurred"]
    assert outside_ranges(reviews, names=["plain", "inverted"]) == ["inverted"]
    assert outside_ranges(reviews, statistic="bead_contrast") == ["inverted"]
    # what the film it was made from shows too does not count
    assert told_unusual(reviews, base="as it is") == ["inverted", "noised"]


def test_the_films_sentence_counts_from_the_verdicts():
    from weldlab.review import films_sentence
    from weldlab.verdict import Reason

    bead = Reason("input", statistic="bead_contrast", value=0.0, range=(0.1, None))
    p99 = Reason("input", statistic="p99", value=0.95, range=(0.5, 0.9))
    reviews = {"noise": {"verdict": "review", "reasons": [p99], "cnn": "review"},
               "flat": {"verdict": "review", "reasons": [], "cnn": "accept"},
               "a": {"verdict": "accept", "reasons": [], "cnn": "accept"},
               "b": {"verdict": "review", "reasons": [p99], "cnn": "accept"},
               "a, inverted": {"verdict": "review", "reasons": [bead], "cnn": "accept"},
               "b, inverted": {"verdict": "review", "reasons": [p99], "cnn": "accept"}}
    said = films_sentence(reviews, ["noise", "flat"], ["a", "b"], ["a, inverted", "b, inverted"], 24)
    assert said.startswith("2 of the 2 non-weld images go to review with the detector, 1 with the CNN. "
                           "The input checks call 1 of the 2 test films unusual (b): a film of the same kind "
                           "as the 24 training films")
    assert said.endswith("; 1 of the 2 inverted test films by their bead, which is no longer brighter than the plate.")
    reviews["b"]["reasons"] = []
    assert "call 0 of the 2 test films unusual; 1 of the 2" in films_sentence(
        reviews, ["noise", "flat"], ["a", "b"], ["a, inverted", "b, inverted"], 24)


def test_the_goal_is_stated_only_where_the_calibrated_rate_holds():
    """Issue 24: a detector that flags 5 of 300 test okay patches at a 0.1 % calibration
    (17 times its rate) is reported as not working on that split, not as catching the kinds."""
    from weldlab.review import false_positive_sentence, fpr_holds

    assert fpr_holds(0, 300, 0.001) == (True, 1.0)
    assert fpr_holds(2, 300, 0.001)[0] and not fpr_holds(3, 300, 0.001)[0]  # chances 0.037 and 0.0036

    def rates(test_flagged):
        return {"okay (validation)": {"n": 120, "detector": 0.0, "inputs": 0.0},
                "okay (test)": {"n": 300, "detector": test_flagged / 300, "inputs": test_flagged / 300},
                "okay, rotated (control)": {"n": 20, "detector": 0.1},
                "blank": {"n": 20, "detector": 1.0}, "noised": {"n": 20, "detector": 0.5}}

    working = false_positive_sentence(rates(1), 0.001, "okay, rotated (control)", kinds=["blank", "noised"])
    assert "0.3 % on the test okay patches" in working and "1 of the 2 kinds go to review" in working
    failing = false_positive_sentence(rates(5), 0.001, "okay, rotated (control)", kinds=["blank", "noised"])
    assert failing.startswith("**On this split the detector does not work as calibrated.** It sends 5 of 300")
    assert "go to review at least" not in failing and "1.7 % on the test okay patches" in failing
