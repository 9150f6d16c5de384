"""WLSMV optimisation outside the parameter space: a trial point where a latent response has a
non-positive implied variance is infeasible (objective +inf, so the step is halved), not a source
of numpy warnings."""
from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import instrument as ins
from instrument.invariance import collapse_empty_categories
from instrument.sem.estimators.categorical import DWLSObjective, model_state

FIX = Path(__file__).parent / "fixtures" / "wlsmv"


def test_infeasible_theta_point_is_inf_without_a_warning():
    d = pd.read_csv(FIX / "bfi_complete25.csv")
    d["sex"] = np.where(d["gender"] == 1, "male", "female")
    syn = (FIX / "j_syntax_thresholds.lav").read_text()
    items = [f"{a}{i}" for a in "ACN" for i in range(1, 6)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = ins.cfa(syn, d, group="sex", group_order=["male", "female"], ordered=items,
                      parameterization="theta")
    st = model_state(fit)
    model, x = st["model"], st["x"].copy()
    obj = DWLSObjective(model, st["cstats"], st["weight"])
    assert math.isfinite(obj.value(x))
    # a free residual variance of group 2 far below zero: the implied variance goes negative
    free = fit.partable.iloc[model.free_rows]
    row = int(np.flatnonzero(((free["op"] == "~~") & (free["lhs"] == free["rhs"])
                              & (free["lhs"] == "A1") & (free["group"] == 2)).to_numpy())[0])
    x[model.x_col[row]] = -50.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert obj.value(x) == math.inf


def test_tiny_plan_ordinal_ladder_emits_no_numpy_warning():
    bank = ins.load_bank()
    fam = ins.simulate("tiny", seed=7, bank=bank).family.data
    fam, _ = collapse_empty_categories(fam, bank.items_for("family"), "language")
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        res = ins.invariance(bank.model_syntax(form="family"), fam, group="language",
                             estimator="WLSMV", ordered=True, missing="pairwise")
    assert res.table["converged"].all()
