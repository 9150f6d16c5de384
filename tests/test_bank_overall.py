"""The bank's optional overall score (``overall:`` in bank.yaml): declared, it is the mean of the
keyed construct scores; absent, no overall score is computed, linked or reported, and the stages
that need one score stand aside with the reason."""
import json
import re
import shutil
from html import unescape
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

import instrument as ins
from instrument.bank import load_bank, shipped_bank_path
from instrument.cli import main
from instrument.linker import link
from instrument.results import from_jsonable
from instrument.rules import MIN_ITEM_SHARE
from instrument.scores import respondent_scores, school_scores
from instrument.simulate import simulate


def _bank_copy(tmp_path, overall: str | None):
    """The shipped bank with its ``overall:`` block replaced by ``overall`` (None: removed)."""
    dest = tmp_path / "bank"
    shutil.copytree(shipped_bank_path(), dest)
    p = dest / "bank.yaml"
    head, sep, _ = p.read_text().partition("\noverall:\n")
    assert sep, "the shipped bank declares an overall score"
    p.write_text(head + "\n" + (overall or ""))
    return dest


@pytest.fixture(scope="module")
def sim():
    return simulate("tiny", seed=7, bank=load_bank())


def test_shipped_overall_is_the_mean_of_every_keyed_construct_score(sim):
    bank = load_bank()
    assert bank.overall["constructs"] == tuple(bank.constructs["construct"])
    assert bank.overall["forms"] == bank.forms
    for rs in (sim.teacher, sim.family):
        r = respondent_scores(rs, bank=bank)
        cons = r[list(bank.constructs["construct"])].to_numpy(float)
        k = np.isfinite(cons).sum(axis=1)
        ok = np.array([MIN_ITEM_SHARE.passes(a / cons.shape[1]) for a in k]) & (k > 0)
        with np.errstate(invalid="ignore"):
            want = np.where(ok, np.nanmean(np.where(ok[:, None], cons, 0.0), axis=1), np.nan)
        np.testing.assert_allclose(r["overall"].to_numpy(float), want, rtol=1e-12)
        assert np.isfinite(want).mean() > 0.9


def test_bank_without_overall_scores_and_links_constructs_only(tmp_path, sim):
    bank = load_bank(_bank_copy(tmp_path, None))
    assert bank.overall is None and bank.overall_constructs("teacher") == []
    assert "overall" not in respondent_scores(sim.teacher, bank=bank).columns
    sc = school_scores(sim.teacher, bank=bank, outcomes=sim.outcomes)
    assert set(sc["construct"]) == set(bank.constructs["construct"])
    with pytest.raises(ValueError, match="no overall score .* one of mindsets, leadership"):
        link(sc, sim.outcomes, form="teacher")
    r = link(sc, sim.outcomes, construct="mindsets", form="teacher", controls=())
    assert r.construct == "mindsets" and r.nobs > 0
    sc.to_csv(tmp_path / "scores.csv", index=False)
    sim.outcomes.to_csv(tmp_path / "outcomes.csv", index=False)
    res = CliRunner().invoke(main, ["link", str(tmp_path / "scores.csv"),
                                    str(tmp_path / "outcomes.csv")])
    assert res.exit_code != 0 and "one of mindsets, leadership" in res.output


def test_overall_naming_an_unknown_construct_or_form_is_a_file_line_error(tmp_path):
    root = _bank_copy(tmp_path, "overall:\n  label: {en: All, es: Todo}\n"
                                "  constructs: [mindsets, partnership]\n  forms: [principal]\n")
    mf = str(root / "bank.yaml")
    lines = (root / "bank.yaml").read_text().splitlines()
    start = lines.index("overall:")
    at = {k: 1 + next(i for i, s in enumerate(lines) if i > start and s.startswith(f"  {k}:"))
          for k in ("constructs", "forms")}
    got = [str(p) for p in ins.check_bank(root)]
    cons = "mindsets, leadership, communication, relationships, language_culture"
    assert f"{mf}:{at['constructs']}: overall.constructs[1]: unknown construct 'partnership'; " \
           f"expected one of {cons} (declared in constructs.yaml)" in got, got
    assert any(p.startswith(f"{mf}:{at['forms']}: overall.forms[0]: unknown form 'principal'")
               for p in got), got
    assert len(got) == 2, got


def _text(html: str) -> str:
    html = re.sub(r"<(style|script)\b.*?</\1>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html)))


def test_validate_without_overall_stands_aside_or_links_the_named_construct(tmp_path,
                                                                            monkeypatch):
    import instrument.report.pdf as pdf

    monkeypatch.setattr(pdf, "find_chromium", lambda *a, **k: None)
    bank = _bank_copy(tmp_path, None)
    plan = yaml.safe_load((Path(ins.__file__).parent / "analyses" / "tiny.yaml").read_text())
    plan.update(bank=str(bank), stages={s: False for s in (
        "item_analysis", "efa", "cfa", "syntax", "reliability", "invariance", "irt", "irt_dif")})
    runs = {}
    for name, analysis in (("aside", {}), ("named", {"linked_construct": "mindsets"})):
        p = tmp_path / f"{name}.yaml"
        if analysis:   # enough schools that the outcome model is estimated
            plan["simulation"]["schools"]["n"] = 40
            analysis["outcomes"] = ["chronic_absence"]
        p.write_text(yaml.safe_dump({**plan, "analysis": analysis}, sort_keys=False))
        res = CliRunner().invoke(main, ["validate", str(p), "--out", str(tmp_path / name)])
        assert res.exit_code == 0, res.output[-2000:]
        runs[name] = json.loads((tmp_path / name / "results.json").read_text())
    st = {s["name"]: s for s in runs["aside"]["stages"]}
    for s in ("linker", "policy"):
        assert st[s]["status"] == "n/a"
        assert st[s]["message"].startswith("the item bank defines no overall score and the plan "
                                           "names no construct; expected analysis: "
                                           "{linked_construct: <one of mindsets, ")
    cards = _text((tmp_path / "aside" / "reports" / "school_cards.html").read_text())
    assert "Overall" not in cards and "overall" not in cards
    st = {s["name"]: s for s in runs["named"]["stages"]}
    assert st["linker"]["status"] in ("ok", "warning") and st["policy"]["status"] in ("ok",
                                                                                      "warning")
    for f in ("technical_report.html", "policy_brief.html", "school_cards.html"):
        text = _text((tmp_path / "named" / "reports" / f).read_text())
        assert not re.search(r"(?i)\boverall\b", text), f
    linked = runs["named"]["results"]["linker"]["results"]
    assert linked and {r["construct"] for r in linked} == {"mindsets"}
    tab = from_jsonable(runs["named"]["results"]["scores"]["table"])
    assert set(tab["construct"]) == {"mindsets", "leadership", "communication", "relationships",
                                     "language_culture"}
