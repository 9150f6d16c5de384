"""Contract tests over every result type of this area (sklearn `test_common` style)."""
import json
from pathlib import Path

import pandas as pd
import pytest

from instrument import (alpha, efa, icc, item_analysis, muml_covariances, parallel_analysis,
                        split_half_reliability)
from instrument.results import dumps

FIX = Path(__file__).parent / "fixtures"
HS = pd.read_csv(FIX / "efa" / "HolzingerSwineford1939.csv")
MA = pd.read_csv(FIX / "multilevel" / "MathAchieve.csv").iloc[:1500]
X9 = [f"x{i}" for i in range(1, 10)]

BUILDERS = {
    "alpha": lambda: alpha(HS[["x4", "x5", "x6"]]),
    "efa": lambda: efa(HS[X9], 3, rotation="promax"),
    "parallel": lambda: parallel_analysis(HS[X9], n_iter=5, seed=42),
    "icc": lambda: icc(MA, "MathAch", "School"),
    "split_half": lambda: split_half_reliability(MA, "SES", "School", n_splits=5, seed=42),
    "muml": lambda: muml_covariances(MA, ["MathAch", "SES"], "School"),
    "item_analysis": lambda: item_analysis(HS, ["x1", "x2"], categories=None, group="school"),
}


@pytest.mark.parametrize("name", BUILDERS)
def test_json_roundtrip(name):
    r = BUILDERS[name]()
    back = type(r).from_dict(json.loads(dumps(r)))
    assert dumps(back) == dumps(r)


@pytest.mark.parametrize("name", BUILDERS)
def test_summary_renders(name):
    t = BUILDERS[name]().summary()
    for out in (t.as_text(), t.as_html(), t.as_markdown()):
        assert t.title[:8] in out


@pytest.mark.parametrize("name", BUILDERS)
def test_same_input_same_bytes(name):
    assert dumps(BUILDERS[name]()) == dumps(BUILDERS[name]())


@pytest.mark.parametrize("call, message", [
    (lambda: alpha(HS[X9], use="complete"), "use= must be one of 'pairwise', 'listwise'; got 'complete'."),
    (lambda: efa(HS[X9], 2, method="uls"), "method= must be one of 'minres', 'ml'; got 'uls'."),
    (lambda: parallel_analysis(HS[X9], seed=1, fm="ml"), "fm= must be one of 'minres'; got 'ml'."),
    (lambda: split_half_reliability(MA, "SES", "School", n_splits=0, seed=1), "n_splits= must be"),
])
def test_bad_option_message(call, message):
    with pytest.raises(ValueError) as e:
        call()
    assert message in str(e.value)
