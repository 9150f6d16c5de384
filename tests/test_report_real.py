"""Reports rendered from a REAL `validate` run (the small plan), not the hand-written fixture.

One module-scoped run of tests/fixtures/pipeline/small.yaml (about 20 s) feeds every test:
every section reader finds its stage's output; the technical report has every section and
sub-section with no "not available"; no respondent identifier appears in any report or syntax
file; suppressed schools and districts show no score; the lavaan / Mplus files are written per
form; each page loads in headless Chromium without console messages.

The syntax files of this run were checked against lavaan 0.6-14 by hand (2026-11-25; the
teacher files are kept as an oracle fixture in tests/fixtures/syntax_export):
    Rscript -e 'library(lavaan); model <- paste(readLines("teacher.lav"), collapse="\\n");
      dat <- read.table("teacher_cfa.dat", col.names=..., na.strings="-999");
      fitMeasures(cfa(model, data=dat, estimator="ML"), c("chisq", "df", "ntotal"))'
gave chisq 562.715 / df 485 / ntotal 191 (teacher) and 455.113 / 395 / 336 (family), equal to
results["cfa"][form]["fit_measures"] of the same run.
"""
from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pandas as pd
import pytest

from instrument.pipeline import validate
from instrument.invariance.ordinal import ORDINAL_STEP_NOTES
from instrument.report import TECHNICAL_SECTIONS, BRIEF_SECTIONS, NOT_AVAILABLE
from instrument.report.adapters import READERS, read_all
from instrument.results import from_jsonable

PLAN = Path(__file__).parent / "fixtures" / "pipeline" / "small.yaml"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("real")
    r = validate(PLAN, out)
    assert r.ok, [(s.name, s.message) for s in r.stages if s.status != "ok"]
    payload = json.loads((out / "results.json").read_text())
    pages = {p.stem: p.read_text(encoding="utf-8") for p in (out / "reports").glob("*.html")}
    return out, payload, pages


def _frame(obj):
    return from_jsonable(obj["table"] if "table" in obj else obj)


def test_every_section_reads_real_output(run):
    _, payload, _ = run
    secs = read_all(payload["results"])
    assert set(secs) == set(READERS)
    assert all(s.available for s in secs.values()), {k: s.reason for k, s in secs.items()}


def test_technical_report_complete(run):
    _, payload, pages = run
    t = pages["technical_report"]
    for i, s in enumerate(TECHNICAL_SECTIONS, 1):
        assert f"<h2>{i}. {s}</h2>" in t
    for h in ("Exploratory factor analysis", "Model fit", "Factor loadings",
              "Measurement invariance", "Reliability", "State and district scores",
              "Variance between districts and schools", "Teacher and family views"):
        assert f"<h3>{h}" in t, h
    assert NOT_AVAILABLE not in t
    res = payload["results"]
    # one invariance ladder per "<form> by <group>" key, with releases when partial
    for key, lad in res["invariance"].items():
        assert f"Measurement invariance ladder, {key}" in t
        if from_jsonable(lad["releases"]).shape[0]:
            assert f"Constraints released for partial invariance, {key}" in t
            for p in from_jsonable(lad["releases"])["parameter"]:
                assert f"<td>{p}</td>" in t
        tab = from_jsonable(lad["table"])
        if lad["estimator"] in ("WLSMV", "ULSMV"):      # the indices the rules used are shown
            cap = t.split(f"Measurement invariance ladder, {key}")[1].split("</table>")[0]
            assert "<th>CFI (scaled)</th>" in cap and "<th>χ² (scaled)</th>" in cap
            assert f"<td>{tab['cfi.scaled'].iloc[1]:.3f}</td>" in cap
        if (~tab["holds"].iloc[1:].astype(bool)).any() and not len(
                from_jsonable(lad["releases"])):
            assert "no constraints were released in these results" in t
        # each step's verdict is listed under the table; what an ordinal step constrains is
        # explained once after the list rather than in every verdict
        for v in tab["verdict"].iloc[1:]:
            for note in ORDINAL_STEP_NOTES.values():
                v = v.replace(" " + note, "")
            assert html.escape(v) in t, v
    # EFA per form; reliability by form and language with omega from the CFA
    for form in res["efa"]:
        assert f"Parallel analysis, {form} form" in t
        assert f"pattern matrix, {form} form" in t
    rel = _frame(res["reliability"])
    cap = t.split("Reliability of the construct scores")[1].split("</table>")[0]
    assert "<th>language</th>" in cap and "<th>omega</th>" in cap
    assert f"<td>{rel['omega'].dropna().iloc[0]:.3f}</td>" in cap
    # the CFA table shows N used and the respondents dropped listwise, per form
    fit_tab = t.split("Fit of the confirmatory factor models")[1].split("</table>")[0]
    for form, d in res["cfa"].items():
        assert f"<td>{int(d['fit_measures']['ntotal'])}</td>" in fit_tab
        if "nobs_dropped_listwise" in d["meta"]["options"]:     # listwise ML fits
            assert f"<td>{int(d['meta']['options']['nobs_dropped_listwise'])}</td>" in fit_tab
    # the invariance figure draws the limits the verdicts quote (when they all quote one)
    from instrument.report.render import _applied_thresholds
    tabs = [from_jsonable(lad["table"]) for lad in res["invariance"].values()]
    if all(len(_applied_thresholds(tabs, k)) == 1 for k in ("cfi.delta", "rmsea.delta")):
        assert "the limits quoted in every verdict of the ladders" in t
    # fit cut-offs are heuristics with their source
    assert "not applied as verdicts" in t and "Hu, L., &amp; Bentler" in t
    # 3-level variance and convergence numbers come from the policy stage
    vc = res["policy"]["variance_components"]["teacher"]
    assert f"<td>{vc['icc_district']:.4f}</td>" in t
    conv = from_jsonable(res["policy"]["convergence"])
    assert f"<td>{conv['r'].iloc[0]:.3f}</td>" in t


def test_brief_plain_numbers_from_results(run):
    _, payload, pages = run
    b = pages["policy_brief"]
    for s in BRIEF_SECTIONS:
        assert f"<h2>{s}</h2>" in b
    link = payload["results"]["linker"]["results"][0]
    eff = from_jsonable(link["effects"]).set_index("predictor")
    sc, pv = eff.loc["score", "contrast_pp"], eff.loc["poverty", "contrast_pp"]
    text = re.sub(r"\s+", " ", b)
    # the shipped bank's overall score, named by its label
    assert (f"90th percentile of the {link['form']} overall partnership practice score, "
            "compared with") in text
    assert (f"{abs(sc):.1f} percentage points {'lower' if sc < 0 else 'higher'} chronic "
            f"absenteeism") in text
    assert (f"the same comparison gives {abs(pv):.1f} points "
            f"{'lower' if pv < 0 else 'higher'}") in text
    st = from_jsonable(payload["results"]["policy"]["rollup_state"])
    st = st[(st["form"] == "teacher") & (st["construct"] == "overall")].iloc[0]
    assert f"average school score is {st['score']:.0f}" in text


def test_no_respondent_id_anywhere(run):
    out, _, pages = run
    ids = set()
    for form in ("teacher", "family"):
        ids |= set(pd.read_csv(out / "data" / f"{form}.csv")["respondent_id"].astype(str))
    assert ids
    files = {**pages, **{p.name: p.read_text() for p in (out / "syntax").iterdir()}}
    for name, text in files.items():
        assert "respondent_id" not in text.lower(), name
        tokens = set(re.findall(r"[A-Za-z0-9_-]+", text))
        assert not (ids & tokens), (name, sorted(ids & tokens)[:5])


def test_suppressed_schools_and_districts_show_no_score(run):
    _, payload, pages = run
    cards = pages["school_cards"]
    sc = _frame(payload["results"]["scores"])
    sup = sc[sc["suppressed"].astype(bool)]
    assert len(sup)
    for (sid, form), g in sup.groupby(["school_id", "form"]):
        card = cards.split(f'id="school-{sid}"')[1].split("</section>")[0]
        block = card.split(f"<h3>{form.capitalize()} survey</h3>")[1].split("<h3>")[0]
        whole = sc[(sc["school_id"] == sid) & (sc["form"] == form)]["suppressed"].all()
        if whole:
            assert "Not shown:" in block and 'class="dot"' not in block
        assert block.count("Not shown:") >= (1 if whole else len(g))
        # no score of this school's suppressed results leaks as a printed number
        for v in g["score"].dropna():
            assert f"<strong>{v:.0f}</strong>" not in block
    d = from_jsonable(payload["results"]["policy"]["rollup_district"])
    t = pages["technical_report"]
    table = t.split("District results, overall score by form")[1].split("</table>")[0]
    for _, r in d[d["suppressed"].astype(bool) & (d["construct"] == "overall")].iterrows():
        row = re.search(rf"<tr><td>{r['unit']}</td><td>{r['form']}</td>.*?</tr>", table)
        assert row, r["unit"]
        cells = re.findall(r"<td>(.*?)</td>", row.group(0))
        assert "yes" in cells
        assert not any(re.fullmatch(r"\d+\.\d\d", c) for c in cells), cells


def test_syntax_files_per_form(run):
    out, payload, _ = run
    for form, fit in payload["results"]["cfa"].items():
        lav = (out / "syntax" / f"{form}.lav").read_text()
        inp = (out / "syntax" / f"{form}.inp").read_text()
        assert fit["meta"]["options"]["model"].strip() in lav
        assert f"ESTIMATOR = {fit['meta']['options']['estimator']};" in inp
        n_lv = len(fit["lv_names"])
        assert inp.count(" BY ") == n_lv
        dat = pd.read_csv(out / "syntax" / f"{form}_cfa.dat", sep=" ", header=None)
        assert dat.shape[1] == len(fit["ov_names"])
        # the CFA half: listwise-complete rows (or all rows, pairwise) are the fit's N
        used = ((dat != -999).all(axis=1).sum() if fit["meta"]["options"].get("missing")
                in (None, "listwise") else len(dat))
        assert used == fit["fit_measures"]["ntotal"]
        if fit["meta"]["options"]["estimator"] in ("WLSMV", "ULSMV"):
            assert "CATEGORICAL ARE" in inp and "ordered = c(" in lav
    assert payload["results"]["syntax"]["files"].keys() == payload["results"]["cfa"].keys()


def test_real_pages_load_in_chromium(run, tmp_path):
    from test_report_browser import _headings, _probe_copy, chromium_load

    out, _, _ = run
    expected = {"technical_report": [f"{i}. {s}" for i, s in enumerate(TECHNICAL_SECTIONS, 1)],
                "policy_brief": list(BRIEF_SECTIONS)}
    for stem, heads in expected.items():
        page = out / "reports" / f"{stem}.html"
        dom, console = chromium_load(_probe_copy(page, tmp_path))
        assert console == [], console
        got = _headings(dom)
        assert all(h in got for h in heads), (heads, got)
        m = re.search(r'data-images="(\d+)"[^>]*data-broken="(\d+)"', dom)
        assert m and int(m.group(2)) == 0 and int(m.group(1)) == page.read_text().count("<img ")


def test_failed_stage_is_named_in_the_reports_stage(run, tmp_path, monkeypatch):
    """The `reports` stage reads the stage statuses `validate` gives it, so a section whose
    stage failed says which failure, not only "not available"."""
    from instrument.report.render import pipeline_stage

    _, payload, _ = run
    results = {k: v for k, v in payload["results"].items() if k != "efa"}
    stages = [dict(s, status="failed", message="ValueError: no convergence")
              if s["name"] == "efa" else s for s in payload["stages"]]
    monkeypatch.setenv("INSTRUMENT_CHROMIUM", str(tmp_path / "none"))  # HTML only
    pipeline_stage({"results": results, "out_dir": tmp_path,
                    "stage_records": lambda needs=None: stages})
    t = (tmp_path / "reports" / "technical_report.html").read_text()
    efa = t.split("<h3>Exploratory factor analysis</h3>")[1].split("<h3>")[0]
    assert "ot available in this run (stage failed: ValueError: no convergence)" in efa
    assert "Stages that did not complete in this run" in t
