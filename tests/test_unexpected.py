import numpy as np
import pytest

from weldlab import perturbations
from weldlab.unexpected import HELD_OUT_IMAGES, UNEXPECTED_KINDS, detection_rates, unexpected_inputs


def test_every_kind_is_made_seeded_and_differs_from_okay(rng):
    okay = (0.35 + 0.1 * rng.random((6, 192, 192))).astype(np.float32)
    a, b = unexpected_inputs(okay, n=4, seed=2), unexpected_inputs(okay, n=4, seed=2)
    assert tuple(a) == UNEXPECTED_KINDS
    for kind, x in a.items():
        assert x.shape == (4, 192, 192) and x.dtype == np.float32, kind
        assert np.isfinite(x).all() and x.min() >= 0 and x.max() <= 1, kind
        assert np.array_equal(x, b[kind]), kind
    assert np.all(a["blank"] == a["blank"][:, :1, :1])
    assert np.allclose(a["inverted"].mean(), 1 - okay.mean(), atol=0.02)
    assert (a["markers"].max(axis=(1, 2)) > okay.max() + 0.1).all()  # bright lead letters
    assert not np.array_equal(unexpected_inputs(okay, n=4, seed=3)["rotated"], a["rotated"])
    with pytest.raises(ValueError, match="okay"):
        unexpected_inputs(np.zeros((3, 100, 100)))
    with pytest.raises(ValueError, match="n:"):
        unexpected_inputs(okay, n=0)


def test_held_out_images_are_not_sni_sources():
    import inspect

    source = inspect.getsource(perturbations.natural_images)
    assert not any(f'"{name}"' in source for name in HELD_OUT_IMAGES)


def test_detection_rates_counts_scores_above_one():
    inputs = {"a": np.zeros((4, 192, 192)), "b": np.ones((2, 192, 192))}
    rates = detection_rates(inputs, {"ae": lambda x: x.mean(axis=(1, 2)) * 3})
    assert rates == {"a": {"n": 4, "ae": 0.0}, "b": {"n": 2, "ae": 1.0}}
