"""Contract tests over the public result types (STYLE.md §6, sklearn's test_common idea): each
round-trips through JSON text to an equal result, renders its summary as text, HTML and
Markdown, and the same seed gives the same bytes."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import instrument as ins
from instrument.results import Table, dumps

FIX = Path(__file__).parent / "fixtures"
HS_MODEL = "visual =~ x1 + x2 + x3\ntextual =~ x4 + x5 + x6\nspeed =~ x7 + x8 + x9"


def _hs():
    return pd.read_csv(FIX / "cfa" / "HolzingerSwineford1939.csv")


def _sim():
    return ins.simulate("tests/fixtures/pipeline/small.yaml", seed=3)


def _scores():
    sim = _sim()
    return ins.school_scores(sim.teacher, bank=ins.load_bank(), outcomes=sim.outcomes), sim


def _ml():
    return ins.cfa(HS_MODEL, _hs())


def _mlr():
    return ins.cfa(HS_MODEL, _hs(), estimator="MLR")


def _wlsmv():
    d = _hs()
    cut = d[[f"x{i}" for i in range(1, 10)]].apply(lambda c: pd.qcut(c, 4, labels=False) + 1)
    return ins.cfa(HS_MODEL, cut, ordered=True)


def _invariance():
    return ins.invariance(HS_MODEL, _hs(), group="school", steps=("configural", "metric"))


def _alpha():
    return ins.alpha(_hs()[["x1", "x2", "x3"]])


def _efa():
    return ins.efa(_hs()[[f"x{i}" for i in range(1, 10)]], 3)


def _icc():
    s, sim = _scores()
    from instrument.scores import respondent_scores
    r = respondent_scores(sim.teacher, bank=ins.load_bank())
    return ins.icc(r, "overall", "school_id")


def _link():
    s, sim = _scores()
    return ins.link(s, sim.outcomes, outcome="chronic_absence")


def _classification():
    rng = np.random.default_rng(1)
    return ins.classification_accuracy(rng.uniform(1, 99, 50), np.full(50, 5.0))


def _simulation():
    return _sim()


def _rasch():
    return ins.rasch(pd.read_csv(FIX / "data" / "irt_rasch.csv").iloc[:, :5], model="rsm")


def _irt():
    return ins.irt(pd.read_csv(FIX / "data" / "science.csv"), se=True)


def _dif():
    d = pd.read_csv(FIX / "data" / "irt_dif.csv")
    return ins.dif(d, ["i01", "i02", "i03", "i04"], group="language")


def _lrdif():
    d = pd.read_csv(FIX / "data" / "irt_dif.csv")
    return ins.lrdif(d, ["i01", "i02", "i04"], group="language", anchors=["i01", "i02"])


def _montecarlo():
    cov = np.array([[1.0, 0.4], [0.4, 1.0]])
    pop = ins.MomentPopulation(("a", "b"), cov, 30)
    return ins.montecarlo(pop, _corr_record, reps=6, seed=1)


def _dfi():
    return ins.dynamic_cutoffs(_ml(), reps=10, seed=2)


def _corr_record(data):
    return {"r": float(data["a"].corr(data["b"])), "converged": True}


FACTORIES = {"CFAResult ML": _ml, "CFAResult MLR": _mlr, "CFAResult WLSMV": _wlsmv,
             "InvarianceResult": _invariance, "AlphaResult": _alpha, "EFAResult": _efa,
             "ICCResult": _icc, "LinkResult": _link, "ClassificationAccuracy": _classification,
             "Simulation": _simulation, "MonteCarloResult": _montecarlo, "DFIResult": _dfi,
             "RaschResult": _rasch,
             "IRTResult": _irt, "DIFResult": _dif, "LRDIFResult": _lrdif}


@pytest.fixture(scope="module", params=sorted(FACTORIES))
def result(request):
    return FACTORIES[request.param]()


def test_json_round_trip(result):
    text = dumps(result.to_dict())
    back = type(result).from_dict(json.loads(text))
    assert dumps(back.to_dict()) == text


def test_summary_renders(result):
    if not hasattr(result, "summary"):
        pytest.fail(f"{type(result).__name__} has no summary()")
    t = result.summary()
    assert isinstance(t, Table)
    assert t.title in t.as_text() and "<table" in t.as_html() and "|" in t.as_markdown()


def test_same_seed_same_bytes():
    a, b = _sim(), _sim()
    assert dumps(a.to_dict()) == dumps(b.to_dict())
    assert dumps(_link().to_dict()) == dumps(_link().to_dict())
