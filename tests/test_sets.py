import re

import pytest

from weldlab import sets
from weldlab.results import COLUMN_LABELS, configurations


def test_every_set_parses_to_its_sources_and_paper_label():
    expected = {("ae", "none"): ((), "None"), ("ae", "D"): (("D",), "D"), ("ae", "sni"): (("sni",), "SNI"),
                ("ae", "D+sni"): (("D", "sni"), "D+SNI"), ("ae", "okay+defects"): ((), "okay+defects"),
                ("cnn", "D+circular"): (("D", "circular"), "D+SC"),
                ("cnn", "D+circular+partial_circle"): (("D", "circular", "partial_circle"), "D+SC+SPC")}
    for (kind, name), (sources, label) in expected.items():
        ts = sets.parse(kind, name)
        assert (ts.sources, ts.label, str(ts)) == (sources, label, name)
    assert sets.parse("ae", "D+sni").perturbed and not sets.parse("ae", "okay+defects").perturbed
    assert sets.parse("ae", "okay+defects").reconstructs_defects
    assert configurations("ae") == sets.AE_SETS and configurations("cnn") == sets.CNN_SETS
    assert COLUMN_LABELS["D+circular+partial_circle"] == "D+SC+SPC" and COLUMN_LABELS["blur"] == "blur baseline"


@pytest.mark.parametrize("kind, name", [("ae", "D+circular"), ("cnn", "sni"), ("cnn", "okay+defects"), ("ae", "SNI")])
def test_a_set_a_kind_cannot_train_on_is_refused_by_name(kind, name):
    with pytest.raises(ValueError, match=rf"--set: expected one of .* for the {kind}, got '{re.escape(name)}'"):
        sets.parse(kind, name, "--set")
