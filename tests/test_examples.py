"""The numpydoc ``Examples`` of the library run and give what they show."""

import doctest
import importlib

import pytest


@pytest.mark.parametrize("module", ["weldlab.screening", "weldlab.residuals", "weldlab.unexpected"])
def test_examples(module):
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0, result
