"""The functions a student calls first carry numpydoc ``Examples``; ``pytest`` runs them
(``--doctest-modules`` over ``weldlab``, see ``pyproject.toml``)."""

import importlib

import pytest

STUDENT_FACING = [
    "weldlab.config.make_config", "weldlab.simulate.simulate_radiograph", "weldlab.patches.augment",
    "weldlab.perturbations.apply_perturbation", "weldlab.models.layer_table_markdown",
    "weldlab.residuals.kernel_statistics", "weldlab.residuals.patch_maxima",
    "weldlab.thresholds.ResidualThresholds", "weldlab.thresholds.threshold_at_fpr",
    "weldlab.trained.TrainedModel", "weldlab.training.hyperparameters", "weldlab.detector.scan_image",
    "weldlab.screening.image_statistics", "weldlab.review.detection_rates",
]


@pytest.mark.parametrize("name", STUDENT_FACING)
def test_student_facing_functions_show_an_example(name):
    module, _, attr = name.rpartition(".")
    doc = getattr(importlib.import_module(module), attr).__doc__
    assert "Examples\n    --------\n    >>> " in doc, name


def test_pytest_runs_the_examples():
    import tomllib
    from pathlib import Path

    ini = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())
    opts = ini["tool"]["pytest"]["ini_options"]
    assert "--doctest-modules" in opts["addopts"] and "weldlab" in opts["testpaths"]
