"""Short form by MILP: every blueprint constraint holds, the choice is optimal (brute force on a
small bank), and the shipped teacher form's short form is built from simulated responses."""
import itertools

import numpy as np
import pytest

import instrument as ins
from instrument.irt.shortform import _solve, cut_thetas, shortform
from instrument.rules import SCORE_BAND_CUTS, SHORTFORM_REVERSE_SHARE


def _check_constraints(sel, construct, finding, reverse, banned, pairs, k):
    for con in set(construct):
        inc = construct == con
        assert sel[inc].sum() == k
        n_find = len(set(finding[inc]))
        assert len(set(finding[inc & sel])) >= min(k, n_find)
        assert (sel & inc & reverse).sum() <= np.floor(SHORTFORM_REVERSE_SHARE.threshold * k)
    assert not (sel & banned).any()
    for i, j in pairs:
        assert not (sel[i] and sel[j])


def test_milp_is_optimal_and_feasible():
    rng = np.random.default_rng(3)
    construct = np.array(["a"] * 7 + ["b"] * 6)
    finding = np.array(["f1", "f1", "f2", "f2", "f3", "f4", "f4", "g1", "g1", "g2", "g2", "g3", "g3"])
    reverse = np.zeros(13, bool)
    reverse[[0, 1, 7, 8]] = True
    banned = np.zeros(13, bool)
    banned[4] = True
    pairs = [(2, 3), (9, 11)]
    info = rng.uniform(1, 10, 13)
    info[[0, 1, 7, 8]] += 20           # reverse-keyed items are the most informative
    k = 3
    sel = _solve(info, construct, finding, reverse, banned, pairs, k)
    _check_constraints(sel, construct, finding, reverse, banned, pairs, k)
    best = -np.inf
    for combo in itertools.product(itertools.combinations(range(7), k),
                                   itertools.combinations(range(7, 13), k)):
        s = np.zeros(13, bool)
        s[list(combo[0]) + list(combo[1])] = True
        try:
            _check_constraints(s, construct, finding, reverse, banned, pairs, k)
        except AssertionError:
            continue
        best = max(best, info[s].sum())
    assert np.isclose(info[sel].sum(), best)


def test_infeasible_blueprint_is_named():
    construct = np.array(["a"] * 3)
    with pytest.raises(ValueError, match="no short form with 3 items"):
        _solve(np.ones(3), construct, np.array(["f", "g", "h"]), np.array([True, True, False]),
               np.zeros(3, bool), [], 3)


def test_cut_thetas_scale():
    assert np.allclose(cut_thetas(0.25), (np.array(SCORE_BAND_CUTS) - 50) / 20 * 0.5)


@pytest.fixture(scope="module")
def teacher_short():
    sim = ins.simulate("analyses/tiny.yaml", seed=2)
    return shortform(sim.teacher, bank=ins.load_bank(), k=3)


def test_shipped_teacher_short_form(teacher_short):
    r = teacher_short
    it = r.items
    sel = it["selected"].to_numpy(bool)
    idx = {n: j for j, n in enumerate(it["item"])}
    pairs = [(idx[a], idx[b]) for a, b in zip(r.ld_pairs["item1"], r.ld_pairs["item2"])]
    _check_constraints(sel, it["construct"].to_numpy(), it["finding"].to_numpy(),
                       it["reverse"].to_numpy(bool), it["dif_flagged"].to_numpy(bool), pairs, 3)
    c = r.constructs
    assert (c["n_short"] == 3).all() and (c["covered"] == np.minimum(3, c["findings"])).all()
    assert (c["rel_short"] < c["rel_full"]).all()
    assert ((c["r_full_short_levy"] > 0) & (c["r_full_short_levy"] < 1)).all()
    form = r.to_bank_form()
    assert form["base_form"] == "teacher" and len(form["items"]) == 3 * len(c)


def test_cli_shortform(tmp_path):
    from click.testing import CliRunner

    from instrument.cli import main
    out = tmp_path / "short.yaml"
    r = CliRunner().invoke(main, ["shortform", "--form", "teacher", "--items-per-construct", "3",
                                  "--plan", "tiny", "--seed", "2", "--export", str(out),
                                  "--export-bank", str(tmp_path / "bank")])
    assert r.exit_code == 0, r.output
    import yaml
    form = yaml.safe_load(out.read_text())
    assert form["form"] == "teacher_short3" and len(form["items"]) == 15
    exported = ins.load_bank(tmp_path / "bank")
    assert (exported.items["form"] == "teacher_short3").sum() == 15
    bad = CliRunner().invoke(main, ["shortform", "--items-per-construct", "9", "--plan", "tiny"])
    assert bad.exit_code != 0 and "needs at least 9" in bad.output and "Traceback" not in bad.output


def test_bank_export_loads_as_a_new_form(teacher_short, tmp_path):
    out = teacher_short.export_bank(tmp_path / "bank")
    bank = ins.load_bank(out)
    src = ins.load_bank()
    new = bank.items[bank.items["form"] == "teacher_short3"].set_index("item_id")
    assert len(new) == len(teacher_short.selected)
    for iid in teacher_short.selected:
        copy = new.loc["teacher_short3_" + iid[len("t_"):]]
        orig = src.items.set_index("item_id").loc[iid]
        for col in ("construct", "finding", "reverse", "scale"):
            assert copy[col] == orig[col], (iid, col)
    # the rest of the bank is unchanged
    assert len(bank.items) == len(src.items) + len(new)
    syntax = bank.model_syntax(form="teacher_short3")
    assert syntax.count("=~") == teacher_short.constructs.shape[0]
    with pytest.raises(ValueError, match="new or empty folder"):
        teacher_short.export_bank(out)


def test_ladder_not_fitted_for_too_few_spanish_teachers(teacher_short):
    lad = teacher_short.ladder
    assert "table" not in lad and "needs two groups of at least 200 respondents each " \
        "(Scott et al. (2009))" in lad["not_tested"] and "{" not in lad["not_tested"]
    from instrument.report.render import render_html
    html = render_html({"irt": teacher_short.to_dict()}, "technical")
    assert "short form&#39;s invariance ladder by language was not fitted" in html \
        or "short form's invariance ladder by language was not fitted" in html


def test_short_form_ladder_by_language():
    from instrument.irt.shortform import _short_ladder
    sim = ins.simulate("analyses/default.yaml", seed=1)
    bank = ins.load_bank()
    data = sim.family.data.iloc[:3000]
    rec = bank.recode_reverse(data, form="family")
    it = bank.items[bank.items["form"] == "family"][["item_id", "construct"]]
    it = it.rename(columns={"item_id": "item"})
    it["selected"] = (it.groupby("construct").cumcount() < 3).to_numpy()
    lad = _short_ladder(it, rec, data, "language")
    t = lad["table"]
    assert list(t["step"]) == ["configural", "thresholds", "metric", "scalar", "strict"]
    assert lad["model"].count("=~") == 5 and all(v >= 200 for v in lad["n"].values())
    # f_comm_2 (among the first three communication items) carries planted threshold DIF
    assert "does not hold" in t.set_index("step").loc["scalar", "verdict"]
