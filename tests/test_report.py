"""Reports render from a stored results file alone (tests/fixtures/report/results_example.json).

The fixture is a rendering fixture with made-up numbers (see its SOURCE.md); these tests check
the machinery: sections, tables, figures, numbers traced to the results, privacy, suppression and
"not available" sections. PDF tests need Chromium and fail (never skip) without it.
"""
from __future__ import annotations

import copy
from html import escape as html_escape
import json
import math
import re
import warnings
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from instrument.cli import main
from instrument.report import (BRIEF_SECTIONS, NOT_AVAILABLE, TECHNICAL_SECTIONS, PdfUnavailable,
                               PrivacyError, load_results, render, render_html)
from instrument.report.adapters import as_frame, read_all, read_invariance, read_scores, scrub
from instrument.report.pdf import find_chromium
from instrument.results import from_jsonable, to_jsonable

FIXTURE = Path(__file__).parent / "fixtures" / "report" / "results_example.json"
RID = "RID-7f3a-000"  # a respondent id value that must never be printed


@pytest.fixture(scope="module")
def payload() -> dict:
    return load_results(FIXTURE)


@pytest.fixture(scope="module")
def results(payload) -> dict:
    return payload["results"]


@pytest.fixture(scope="module")
def html(results) -> dict[str, str]:
    return {k: render_html(results, k) for k in ("technical", "brief", "cards")}


def _frame(obj) -> pd.DataFrame:
    return from_jsonable(obj)


def _cards(text: str) -> dict[str, str]:
    """school_id -> the HTML of its card."""
    parts = re.split(r'<section class="card" id="school-', text)[1:]
    return {p.split('"', 1)[0]: p for p in parts}


def _form_chunk(card: str, form: str) -> str:
    for chunk in card.split('<div class="form">')[1:]:
        if f"<h3>{form.capitalize()} survey</h3>" in chunk:
            return chunk.split('<div class="card-foot">')[0]
    raise AssertionError(f"no {form} block in card")


# ------------------------------------------------------------------------------------------------
class TestTechnical:
    def test_five_sources_of_evidence(self, html):
        for i, s in enumerate(TECHNICAL_SECTIONS, 1):
            assert f"<h2>{i}. {s}</h2>" in html["technical"]

    def test_tables_and_figures(self, html):
        t = html["technical"]
        for title in ("Blueprint: scale items by construct and finding",
                      "Status of the Spanish translation", "Cognitive-interview notes",
                      "Fit of the confirmatory factor models", "Factor loadings, teacher form",
                      "Measurement invariance ladder, family form",
                      "Reliability of the construct scores", "ICC(1) and ICC(2)",
                      "Minimum respondents per school", "coefficient of the school score",
                      "10th and 90th percentile", "Schools reported and suppressed",
                      "Classification accuracy by band"):
            assert title in t, title
        for title in ("Category use, teacher form", "Standardised loadings, family form",
                      "Reliability of the school mean by number of respondents",
                      "Change in fit across the invariance steps",
                      "Validity coefficients by outcome", "P10→P90 contrasts"):
            assert re.search(r"<figcaption>.*?" + re.escape(title), t), title
        assert t.count("<img src='data:image/svg+xml;base64,") == 8
        assert t.count("<table class='apa'>") >= 17
        # APA numbering is consecutive
        nums = [int(n) for n in re.findall(r"<span class='tnum'>Table (\d+)</span>", t)]
        assert nums == list(range(1, len(nums) + 1))
        assert NOT_AVAILABLE not in t

    def test_numbers_come_from_results(self, html, results):
        t = html["technical"]
        fm = results["cfa"]["teacher"]["fit_measures"]
        for k in ("cfi", "rmsea", "srmr", "chisq"):
            assert f"<td>{fm[k]:.3f}</td>" in t, k
        rel = _frame(results["reliability"])
        for a in rel["alpha"]:
            assert f"<td>{a:.3f}</td>" in t
        inv = _frame(results["invariance"]["family"]["table"])
        assert f"<td>{inv['cfi.delta'].iloc[2]:.3f}</td>" in t
        assert html_escape(inv["verdict"].iloc[2], quote=False) in t
        icc = _frame(results["multilevel"]["icc"])
        assert f"<td>{icc['icc1'].iloc[0]:.3f}</td>" in t

    def test_fit_cutoffs_are_heuristics_with_source(self, html):
        t = html["technical"]
        assert "not applied as verdicts" in t
        assert "cfi &gt;= 0.95" in t and "Hu, L., &amp; Bentler, P. M. (1999)" in t

    def test_blueprint_counts_items(self, html, results):
        items = _frame(results["bank"]["items"])
        assert f"{len(items)} items covering {items['construct'].nunique()} constructs" in \
            html["technical"]

    def test_fixture_labelled(self, html):
        for t in html.values():
            assert "Example rendered from a fixture" in t


class TestBrief:
    def test_sections_and_charts(self, html):
        b = html["brief"]
        for s in BRIEF_SECTIONS:
            assert f"<h2>{s}</h2>" in b
        assert 1 <= b.count("<img src='data:image/svg+xml;base64,") <= 3

    def test_numbers_come_from_results(self, html, results):
        b = html["brief"]
        eff = _frame(results["linker"][0]["effects"])
        sc = eff[eff["predictor"] == "score"].iloc[0]
        word = "lower" if sc["contrast_pp"] < 0 else "higher"
        assert f"{abs(sc['contrast_pp']):.1f} percentage points {word}" in b
        lo, hi = sorted((abs(sc["ci.lower_pp"]), abs(sc["ci.upper_pp"])))
        assert f"{lo:.1f} to {hi:.1f}" in b
        rel = _frame(results["reliability"])
        assert f"from {rel['alpha'].min():.2f} to {rel['alpha'].max():.2f}" in b
        mk = _frame(results["multilevel"]["min_k"])
        t = mk[(mk["form"] == "teacher") & (mk["target"] == mk["target"].min())]
        assert f'<span class="big">{int(t["k"].max())}</span>' in b


class TestCards:
    def test_one_card_per_school(self, html, results):
        s = _frame(results["scores"])
        cards = _cards(html["cards"])
        assert sorted(cards) == sorted(s["school_id"].unique())
        assert "break-before: page" in html["cards"]

    def test_construct_labels_from_the_bank(self, html):
        assert "<td>Language and culture</td>" in html["cards"]
        assert "<td>Overall</td>" in html["cards"]

    def test_scores_and_bands_shown(self, html, results):
        s = _frame(results["scores"])
        row = s[~s["suppressed"]].iloc[0]
        chunk = _form_chunk(_cards(html["cards"])[row["school_id"]], row["form"])
        assert f"<strong>{row['score']:.0f}</strong>" in chunk
        assert f"</span>{row['band']}" in chunk
        assert f"{row['n']} people answered" in chunk

    def test_suppressed_schools_show_no_scores(self, html, results):
        s = _frame(results["scores"])
        supp = s[s["suppressed"]].groupby(["school_id", "form"]).size().index
        assert len(supp) >= 2
        cards = _cards(html["cards"])
        for sid, form in supp:
            chunk = _form_chunk(cards[sid], form)
            assert "Not shown: fewer than 10 people answered" in chunk
            assert 'class="dot"' not in chunk and 'class="track"' not in chunk
            assert "people answered ·" not in chunk  # small counts are not shown either
            assert not re.search(r"\d+ · (Very Weak|Weak|Neutral|Strong|Very Strong)", chunk)

    def test_suppressed_rows_blanked_even_if_input_has_scores(self, results):
        bad = copy.deepcopy(results)
        s = _frame(bad["scores"])
        i = s.index[s["suppressed"]][0]
        s.loc[i, ["score", "mean"]] = [77.7, 3.9]
        s.loc[i, "band"] = "Strong"
        bad["scores"] = to_jsonable(s)
        chunk = _form_chunk(_cards(render_html(bad, "cards"))[s.loc[i, "school_id"]],
                            s.loc[i, "form"])
        assert "77" not in chunk and "Strong" not in chunk
        sec = read_scores(bad)
        assert math.isnan(sec["table"].loc[i, "score"]) and sec["table"].loc[i, "band"] is None


@pytest.fixture(scope="module")
def leaky(results) -> dict:
    r = copy.deepcopy(results)
    s = _frame(r["scores"])
    s.insert(0, "respondent_id", [f"{RID}{i}" for i in range(len(s))])
    r["scores"] = to_jsonable(s)
    r["item_analysis"]["respondent_id"] = [f"{RID}x", f"{RID}y"]
    cu = pd.DataFrame(r["item_analysis"]["category_use"]["data"],
                      columns=r["item_analysis"]["category_use"]["columns"])
    cu["Respondent_ID"] = f"{RID}z"
    r["item_analysis"]["category_use"] = to_jsonable(cu)
    r["bank"]["cognitive_interviews"]["columns"].append("respondent_id")
    for row in r["bank"]["cognitive_interviews"]["data"]:
        row.append(f"{RID}ci")
    return r


class TestPrivacy:
    @pytest.mark.parametrize("kind", ["technical", "brief", "cards"])
    def test_no_respondent_id_in_any_report(self, leaky, kind):
        t = render_html(leaky, kind)
        assert "respondent_id" not in t.lower()
        assert RID not in t

    def test_scrub_drops_keys_and_columns(self, leaky):
        clean = scrub(leaky)
        assert "respondent_id" not in json.dumps(clean).lower()
        assert RID not in json.dumps(clean)

    def test_last_check_refuses_to_print_an_identifier(self, results):
        with pytest.raises(PrivacyError, match="respondent identifiers"):
            render_html(results, "brief", title="respondent_id list")


class TestNotAvailable:
    def test_missing_sections_say_not_available(self, results):
        part = {k: v for k, v in results.items() if k not in ("linker", "multilevel")}
        t = render_html(part, "technical")
        rel = t.split("<h2>4.")[1].split("<h2>5.")[0]
        assert NOT_AVAILABLE in rel.lower() and "<table" not in rel and "<img" not in rel
        sm = t.split("<h3>Reliability of school means</h3>")[1].split("</section>")[0]
        assert NOT_AVAILABLE in sm.lower() and "<table" not in sm
        b = render_html(part, "brief")
        pred = b.split('<section id="predicts">')[1].split("</section>")[0]
        assert NOT_AVAILABLE in pred.lower() and "percentage points" not in pred

    def test_empty_results_render_without_numbers(self):
        t = render_html({}, "technical")
        for s in TECHNICAL_SECTIONS:
            assert s in t
        assert t.lower().count(NOT_AVAILABLE) >= 9
        assert "<table" not in t and "<img" not in t
        c = render_html({}, "cards")
        assert NOT_AVAILABLE in c.lower() and 'class="dot"' not in c
        b = render_html({}, "brief")
        assert b.lower().count(NOT_AVAILABLE) >= 3 and "<img" not in b

    def test_failed_stage_is_named(self, payload):
        p = copy.deepcopy(payload)
        del p["results"]["linker"]
        p["stages"] = [s for s in p["stages"] if s["name"] != "linker"] + [
            {"name": "linker", "status": "failed", "message": "ValueError: outcomes lack poverty"}]
        t = render_html(p, "technical")
        assert ("not available in this run (stage failed: valueerror: outcomes lack poverty)"
                in t.lower())
        assert "Stages that did not complete in this run" in t


class TestAdapters:
    def test_frame_encodings(self):
        df = pd.DataFrame({"a": [1.0, None], "b": ["x", "y"]})
        for enc in (df, to_jsonable(df), df.to_dict("records"), {"table": to_jsonable(df)}):
            out = as_frame(enc)
            assert list(out.columns) == ["a", "b"] and out["b"].tolist() == ["x", "y"]
        assert as_frame(None) is None and as_frame({"x": 1}) is None

    def test_invariance_delta_aliases_and_single_result(self):
        t = pd.DataFrame({"step": ["configural", "metric"], "cfi": [0.95, 0.949],
                          "delta_cfi": [None, -0.001], "delta_rmsea": [None, 0.0],
                          "verdict": ["baseline", "holds"]})
        sec = read_invariance({"invariance": {"table": to_jsonable(t)}})
        lad = sec["ladders"]["model"]["table"]
        assert "cfi.delta" in lad.columns and "rmsea.delta" in lad.columns

    def test_each_reader_reports_availability(self, results):
        secs = read_all(results)
        # the hand-written fixture has no efa or policy output (tests/test_report_real.py reads
        # every section from a real run)
        present = {k: s for k, s in secs.items() if k in results}
        assert present.keys() >= {"bank", "cfa", "scores", "linker"}
        assert all(s.available for s in present.values()), \
            {k: s.reason for k, s in present.items()}
        assert not secs["efa"].available and not secs["policy"].available
        assert not any(s.available for s in read_all({}).values())


class TestRenderAPI:
    def test_bad_options(self, results, tmp_path):
        with pytest.raises(ValueError, match="kind= must be one of 'technical', 'brief', "
                                             "'cards'; got 'policy'"):
            render(results, "policy", tmp_path)
        with pytest.raises(ValueError, match="formats= must be"):
            render(results, "brief", tmp_path, formats=("docx",))

    def test_same_results_same_bytes(self, results):
        assert render_html(results, "technical") == render_html(results, "technical")

    def test_html_only(self, results, tmp_path):
        out = render(results, "brief", tmp_path, formats=("html",))
        assert out == [tmp_path / "policy_brief.html"]
        assert out[0].read_text(encoding="utf-8").startswith("<!DOCTYPE html>")

    def test_pdf_missing_tool_is_a_clear_error(self, results, tmp_path, monkeypatch):
        monkeypatch.setenv("INSTRUMENT_CHROMIUM", str(tmp_path / "no-such-chromium"))
        with pytest.raises(PdfUnavailable, match="apt-get install -y chromium"):
            render(results, "brief", tmp_path)
        assert (tmp_path / "policy_brief.html").is_file()


def _pdf_pages(path: Path) -> int:
    return len(re.findall(rb"/Type\s*/Page\b", path.read_bytes()))


class TestPdf:
    """Chromium prints the PDFs; without it these fail with the install hint."""

    @pytest.fixture(autouse=True)
    def _need_chromium(self):
        if find_chromium() is None:
            pytest.fail("Chromium is required for the PDF tests: apt-get install -y chromium")

    def test_brief_pdf_two_to_four_pages(self, results, tmp_path):
        paths = render(results, "brief", tmp_path)
        assert [p.suffix for p in paths] == [".html", ".pdf"]
        assert paths[1].read_bytes()[:5] == b"%PDF-"
        assert 2 <= _pdf_pages(paths[1]) <= 4

    def test_cards_pdf_one_page_per_school(self, results, tmp_path):
        pdf = render(results, "cards", tmp_path, formats=("pdf",))[0]
        assert not (tmp_path / "school_cards.html").exists()
        assert _pdf_pages(pdf) == _frame(results["scores"])["school_id"].nunique()


class TestCli:
    def test_report_command(self, tmp_path):
        r = CliRunner().invoke(main, ["report", str(FIXTURE), "--kind", "cards", "--out",
                                      str(tmp_path), "--no-pdf"])
        assert r.exit_code == 0, r.output
        assert (tmp_path / "school_cards.html").is_file()
        assert not (tmp_path / "school_cards.pdf").exists()

    def test_bad_json_names_line_and_column(self, tmp_path):
        bad = tmp_path / "results.json"
        bad.write_text('{"results": {\n  "cfa": ]\n}')
        r = CliRunner().invoke(main, ["report", str(bad), "--no-pdf"])
        assert r.exit_code != 0
        assert "line 2, column" in r.output and "not valid JSON" in r.output

    def test_explicit_pdf_without_chromium_fails_clearly(self, tmp_path, monkeypatch):
        monkeypatch.setenv("INSTRUMENT_CHROMIUM", str(tmp_path / "nope"))
        r = CliRunner().invoke(main, ["report", str(FIXTURE), "--kind", "brief", "--out",
                                      str(tmp_path), "--pdf"])
        assert r.exit_code == 1
        assert "PDF failed" in r.output and "apt-get install -y chromium" in r.output


def test_committed_example_is_labelled_and_complete():
    ex = Path(__file__).parents[1] / "reports" / "example"
    for name, heads in (("technical_report.html", TECHNICAL_SECTIONS),
                        ("policy_brief.html", BRIEF_SECTIONS), ("school_cards.html", ())):
        t = (ex / name).read_text(encoding="utf-8")
        assert "Simulated data." in t and "default plan" in t
        assert "respondent_id" not in t.lower()
        for h in heads:
            assert h in t
    assert (ex / "policy_brief.pdf").read_bytes()[:5] == b"%PDF-"


class TestMinimalInputs:
    """Partial stage outputs render what they have and say what is missing."""

    def test_fit_without_estimates_and_bare_ladder(self):
        r = {"cfa": {"fit_measures": {"chisq": 12.5, "df": 8.0, "cfi": 0.987}},
             "invariance": {"table": [{"step": "configural", "cfi": 0.99},
                                      {"step": "metric", "cfi": 0.985}]}}
        t = render_html(r, "technical")
        assert "<td>12.500</td>" in t and "<td>8</td>" in t and "<td>0.987</td>" in t
        load = t.split("<h3>Factor loadings</h3>")[1].split("<h3>")[0]
        assert "no parameter estimates" in load and "<table" not in load
        inv = t.split("<h3>Measurement invariance</h3>")[1].split("<h3>")[0]
        assert "<td>0.985</td>" in inv and "<img" not in inv

    def test_multigroup_loadings(self):
        est = pd.DataFrame({"lhs": ["f"] * 4, "op": ["=~"] * 4, "rhs": ["x1", "x2"] * 2,
                            "group": [1, 1, 2, 2], "est": [1.0, 0.8, 1.0, 0.9],
                            "std.all": [0.7, 0.6, 0.71, 0.65]})
        t = render_html({"cfa": {"teacher": {"fit_measures": {"cfi": 0.99},
                                             "estimates": to_jsonable(est)}}}, "technical")
        assert "Standardised loadings, teacher form (group 1)" in t
        assert "<td>0.650</td>" in t  # the table keeps every group

    def test_scores_with_only_required_columns_and_unknown_bands(self):
        s = pd.DataFrame({"school_id": ["A", "A", "B"], "form": ["teacher"] * 3,
                          "construct": ["mindsets", "overall", "overall"], "n": [12, 12, 3],
                          "score": [30.0, 70.0, None], "band": ["low", "high", None],
                          "suppressed": [False, False, True]})
        c = render_html({"scores": s.to_dict("records")}, "cards")
        cards = _cards(c)
        assert sorted(cards) == ["A", "B"]
        assert "<strong>30</strong>" in cards["A"] and "<strong>70</strong>" in cards["A"]
        assert "</span>low" in cards["A"] and "</span>high" in cards["A"]
        assert "Not shown: suppressed." in cards["B"]
        assert "response rate unknown" in cards["A"]


def test_linker_results_found_in_nested_containers(results):
    links = results["linker"]
    for shape in (links, {"results": links}, {"teacher": {d["outcome"]: d for d in links}},
                  links[0]):
        sec = read_all({"linker": shape})["linker"]
        assert sec.available
        n = 1 if shape is links[0] else len(links)
        assert len(sec["coefficients"]) == n


def test_reads_real_linker_output():
    """LinkResult.to_dict() from the linker stage's own code renders, numbers traced."""
    links = json.loads((FIXTURE.parent / "linker_real.json").read_text())
    t = render_html({"linker": links}, "technical")
    for d in links:
        coef = _frame(d["coefficients"]).set_index("term").loc["score"]
        eff = _frame(d["effects"]).set_index("predictor")
        assert f"<td>{coef['est']:.5f}</td>" in t
        assert f"<td>{eff.loc['score', 'contrast_pp']:.2f}</td>" in t
        assert f"<td>{eff.loc['poverty', 'ci.upper_pp']:.2f}</td>" in t
    b = render_html({"linker": links}, "brief")
    eff = _frame(links[0]["effects"]).set_index("predictor")
    v = eff.loc["score", "contrast_pp"]
    assert f"{abs(v):.1f} percentage points {'lower' if v < 0 else 'higher'}" in b


def test_reads_real_classification_output():
    c = json.loads((FIXTURE.parent / "classification_real.json").read_text())
    for where in ({"classification": c}, {"policy": {"classification": c}}):
        t = render_html(where, "technical")
        assert f"accuracy of the reporting bands is {c['overall']['accuracy']:.2f}" in t
        bb = _frame(c["by_band"])
        assert f"<td>{bb['consistency'].iloc[0]:.3f}</td>" in t


def test_pipeline_stage_renders_every_kind(results, tmp_path, monkeypatch):
    from instrument.report.render import pipeline_stage

    monkeypatch.setenv("INSTRUMENT_CHROMIUM", str(tmp_path / "none"))  # HTML only, quickly
    out = pipeline_stage({"results": from_jsonable(results), "out_dir": tmp_path})
    assert out["pdf"] is False and "apt-get install -y chromium" in out["note"]
    assert sorted(Path(f).name for f in out["files"]) == [
        "policy_brief.html", "policy_brief_es.html", "school_cards.html", "school_cards_es.html",
        "technical_report.html"]
    assert not any(Path(f).is_absolute() for f in out["files"])
    assert "Evidence based on internal structure" in (tmp_path / "reports" /
                                                      "technical_report.html").read_text()


def test_identifier_value_leaking_elsewhere_is_refused(results):
    """A respondent id value that reached another field is caught by the last check."""
    r = copy.deepcopy(results)
    r["bank"]["respondent_id"] = ["RX-991"]
    r["bank"]["cognitive_interviews"]["data"][0][-1] = "Said by RX-991 in round 1."
    with pytest.raises(PrivacyError, match="identifier value"):
        render_html(r, "technical")
    r["bank"]["respondent_id"] = [1, 2, 3]  # numeric ids are not matched against counts
    render_html(r, "technical")


def test_short_citations():
    from instrument.report.render import _short_cite

    assert _short_cite("Chen, F. F. (2007). Sensitivity of goodness of fit.") == "Chen (2007)"
    assert _short_cite("Hu, L., & Bentler, P. M. (1999). Cutoff.") == "Hu & Bentler (1999)"
    assert _short_cite("Marsh, H. W., Hau, K.-T., & Wen, Z. (2004). In search.") == \
        "Marsh et al. (2004)"
    assert _short_cite("Conventional .05 level") == "Conventional .05 level"


def test_invariance_limits_drawn_only_from_named_rules(results, monkeypatch):
    from instrument import rules

    r = {"invariance": results["invariance"]}
    for name in ("DELTA_CFI_CHEN", "DELTA_RMSEA_CHEN"):
        monkeypatch.delattr(rules, name, raising=False)
    assert "Dashed lines" not in render_html(r, "technical")
    monkeypatch.setattr(rules, "DELTA_CFI_CHEN", rules.Rule(
        "cfi.delta", -0.01, ">=", "Chen, F. F. (2007). Sensitivity."), raising=False)
    t = render_html(r, "technical")
    assert "Dashed lines: cfi.delta -0.01 (Chen (2007))" in t


def test_text_from_results_is_escaped(results):
    r = copy.deepcopy(results)
    evil = "<script>alert('x')</script>"
    cons = _frame(r["bank"]["constructs"])
    cons.loc[0, "description"] = evil
    r["bank"]["constructs"] = to_jsonable(cons)
    r["bank"]["cognitive_interviews"]["data"][0][-1] = evil
    s = _frame(r["scores"])
    s.loc[0, "district_id"] = evil
    r["scores"] = to_jsonable(s)
    for kind in ("technical", "brief", "cards"):
        t = render_html(r, kind, title=evil)
        assert "<script>" not in t and "&lt;script&gt;" in t


def test_invariance_tables_verdicts_under_the_table_side_by_side_and_truth():
    """The ladder table carries a short result per step (no verdict column); verdicts follow it
    as a list; a step with releases gets the full and partial models side by side; a search that
    stopped short is said in the releases note; the truth comparison is a table."""
    import numpy as np

    from instrument.report.render import _invariance_tables, _Numberer

    t = pd.DataFrame({
        "step": ["configural", "scalar", "scalar (partial)", "strict"],
        "chisq": [10.0, 60.0, 30.0, 31.0], "df": [8, 12, 11, 15],
        "chisq.diff": [np.nan, 50.0, 20.0, 1.0], "df.diff": [np.nan, 4.0, 3.0, 4.0],
        "pvalue.diff": [np.nan, 1e-9, 1e-4, 0.9], "dmacs.max": [np.nan, 0.5, 0.3, 0.01],
        "dmacs.item": ["", "y1", "y2", "y3"], "holds": [None, False, False, True],
        "supported": [True, False, False, False],
        "verdict": ["baseline", "does not hold: A", "does not hold: B", "holds: C"],
        "search": [None, None, "does not hold; search stopped: no item qualifies", None]})
    rel = pd.DataFrame({"round": [1], "step": ["scalar"], "item": ["y1"], "parameter": ["y1~1"],
                        "X2": [40.0], "df": [1], "pvalue": [1e-9], "dmacs": [0.5]})
    truth = {"parameters": pd.DataFrame({"item": ["y1", "y2"], "type": ["intercepts"] * 2,
                                         "planted": [True, True], "flagged": [True, False],
                                         "outcome": ["hit", "miss"]}),
             "counts": {"items": {"hit": 1, "miss": 1, "false alarm": 0},
                        "parameters": {"hit": 1, "miss": 1, "false alarm": 0}}}
    d = {"table": t, "estimator": "ML", "releases": rel, "rule_set": "lrt_dmacs",
         "groups": ["en", "es"], "truth": truth}
    html = "".join(str(m) for m in _invariance_tables(_Numberer(), "x by language", d))
    ladder = html.split("</table>")[0]
    assert "verdict" not in ladder and "does not hold: A" not in ladder
    assert "holds, after a failed step" in ladder
    assert html.index("does not hold: A") > html.index("</table>")
    assert "side by side" in html and "y1~1" in html
    assert "The search stopped before every step met its rule" in html
    assert "Released against planted DIF" in html and "1 miss(es)" in html


def _words(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


class TestTextFromResults:
    """Sentences that state a result or a definition are built from the results and rules."""

    PAGES = (("technical", "en"), ("brief", "en"), ("brief", "es"), ("cards", "en"),
             ("cards", "es"))

    def test_no_study_specific_claims(self, results):
        for kind, lang in self.PAGES:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")      # untranslated bank text in Spanish
                text = _words(render_html(results, kind, lang=lang))
            for banned in ("Stage 1", "Stage 2", "Bright Spot", "four practices"):
                assert banned not in text, (kind, lang, banned)

    def test_relations_name_the_linked_outcomes_and_controls(self, results):
        text = _words(render_html(results, "technical"))
        outcomes = {d["outcome"] for d in results["linker"]}
        intro = re.search(r"Do school scores predict ([^?]*)\?", text).group(1)
        from instrument.report.render import OUTCOME_LABELS

        for o in outcomes:
            assert OUTCOME_LABELS[o] in intro, (o, intro)
        assert intro.endswith("over and above poverty and other school characteristics")
        r = copy.deepcopy(results)
        for d in r["linker"]:
            d["controls"] = ["poverty", f"{d['outcome']}_prior"]
        assert "Comparing schools with poverty and prior results held equal:" in _words(
            render_html(r, "brief"))
        assert "over and above poverty and prior results?" in _words(render_html(r, "technical"))
        for d in r["linker"]:
            d["controls"] = []
        assert "over and above" not in _words(render_html(r, "technical"))
        assert "held equal" not in _words(render_html(r, "brief"))

    def test_card_bands_follow_the_rules(self, results, monkeypatch):
        from instrument import rules

        text = _words(render_html(results, "cards"))
        assert "Bands: Very Weak below 20, Weak 20–39, Neutral 40–59, Strong 60–79, " \
               "Very Strong 80 and above. Because a score" in text
        monkeypatch.setattr(rules, "SCORE_BAND_CUTS", (25.0, 45.0, 55.0, 75.0))
        text = _words(render_html(results, "cards"))
        assert "Very Weak below 25, Weak 25–44, Neutral 45–54, Strong 55–74, " \
               "Very Strong 75 and above." in text
        monkeypatch.setattr(rules, "SCORE_BAND_NAMES", ("Low", "Mid", "High"))
        assert "Bands:" not in _words(render_html(results, "cards"))


def _svg_texts(html: str, caption: str) -> list[str]:
    """Text elements of the SVG figure whose caption contains ``caption``."""
    import base64

    i = html.index(caption)
    src = re.search(r"src=['\"]data:image/svg\+xml;base64,([^'\"]+)", html[i:]).group(1)
    svg = base64.b64decode(src).decode("utf-8")
    return [_html_unescape(t).strip() for t in re.findall(r"<text[^>]*>([^<]*)</text>", svg)]


def _html_unescape(s: str) -> str:
    from html import unescape
    return unescape(s)


def test_category_legends_use_the_bank_labels(results):
    r = copy.deepcopy(results)
    r["bank"]["scales"] = {
        "agreement": {"codes": [1, 2, 3, 4], "labels": {
            "en": ["Strongly disagree", "Disagree", "Agree", "Strongly agree"],
            "es": ["Totalmente en desacuerdo", "En desacuerdo", "De acuerdo",
                   "Totalmente de acuerdo"]}},
        "frequency": {"codes": [1, 2, 3, 4, 5], "labels": {
            "en": ["Never", "Rarely", "Sometimes", "Often", "Always"]}}}
    html = render_html(r, "technical")
    agree = _svg_texts(html, "Category use, teacher form, agreement scale")
    for lab in r["bank"]["scales"]["agreement"]["labels"]["en"]:
        assert lab in agree, (lab, agree)
    freq = _svg_texts(html, "Category use, family form, frequency scale")
    assert {"Never", "Rarely", "Sometimes", "Often", "Always"} <= set(freq)
    assert not {"1", "2", "3", "4", "5"} & set(agree + freq)  # codes are not the legend
    assert "frequency scale (codes 1, 2, 3, 4, 5, lowest first)" in html
    # without scales in the results: one figure per form, legend by code
    plain = render_html(results, "technical")
    assert "Category use, teacher form</span>" in plain
    assert "1 = lowest" in plain


def test_category_labels_follow_the_language():
    from instrument.report.adapters import Section
    from instrument.report.render import _category_use_by_scale

    items = pd.DataFrame({"item_id": ["a", "b"], "scale": ["yn", "yn"]})
    bank = Section("bank", True, data={"items": items, "scales": {"yn": {
        "codes": [1, 2], "labels": {"en": ["No", "Yes"], "es": ["No", "Sí"]}}}})
    cu = pd.DataFrame({"form": "f", "item_id": ["a", "a", "b"], "category": [1, 2, 1],
                       "share": [0.4, 0.6, 1.0]})
    ((form, scale, part, labels),) = _category_use_by_scale(cu, bank, "es")
    assert (form, scale, len(part), labels) == ("f", "yn", 3, {1: "No", 2: "Sí"})
    assert _category_use_by_scale(cu, bank, "fr")[0][3] == {1: "No", 2: "Yes"}


class TestLanguagesFromTheBank:
    def _bank_langs(self, results, langs):
        r = copy.deepcopy(results)
        r["bank"]["languages"] = langs
        return r

    def test_english_only_bank_renders_english_and_refuses_spanish(self, results, tmp_path,
                                                                   monkeypatch):
        from instrument.report.render import pipeline_stage, report_languages

        r = self._bank_langs(results, ["en"])
        assert report_languages(r) == (["en"], ["en"])
        with pytest.raises(ValueError, match=r"^lang='es': the reports of these results can be "
                                             r"rendered in en \(the bank's languages: en\)\.$"):
            render_html(r, "brief", lang="es")
        f = tmp_path / "results.json"
        f.write_text(json.dumps({"results": r}))
        res = CliRunner().invoke(main, ["report", str(f), "--kind", "brief", "--lang", "es",
                                        "--out", str(tmp_path / "o"), "--no-pdf"])
        assert res.exit_code == 1 and len(res.output.strip().splitlines()) == 1, res.output
        assert res.output.strip() == ("Error: --lang es: the reports of these results can be "
                                      "rendered in en (the bank's languages: en).")
        res = CliRunner().invoke(main, ["report", str(f), "--kind", "all", "--out",
                                        str(tmp_path / "a"), "--no-pdf"])
        assert res.exit_code == 0, res.output
        assert sorted(p.name for p in (tmp_path / "a").iterdir()) == [
            "policy_brief.html", "school_cards.html", "technical_report.html"]
        monkeypatch.setenv("INSTRUMENT_CHROMIUM", str(tmp_path / "none"))
        out = pipeline_stage({"results": from_jsonable(r), "out_dir": tmp_path / "p"})
        assert not [x for x in out["files"] if "_es" in x]

    def test_a_bank_language_without_a_report_translation_is_named(self, results):
        from instrument.report.render import report_languages

        r = self._bank_langs(results, ["en", "es", "fr"])
        assert report_languages(r)[0] == ["en", "es"]
        with pytest.raises(ValueError, match="no report translation for fr"):
            render_html(r, "cards", lang="fr")
        assert "Escuela" in render_html(r, "cards", lang="es")


class TestBriefReadsOmegaAndFit:
    """The brief interprets omega and the CFA fit from the results, with the rules' limits."""

    def _text(self, results, lang="en"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")      # untranslated bank text in Spanish
            return _words(render_html(results, "brief", lang=lang))

    def test_omega_range_and_constructs_below_the_rule(self, results):
        from instrument import rules

        rel = from_jsonable(results["reliability"])
        om = rel["omega"].astype(float)
        text = self._text(results)
        assert (f"ranges from {om.min():.2f} to {om.max():.2f}. Every practice reaches "
                f"{rules.MIN_SCALE_OMEGA.threshold:.2f}, the usual minimum for research use "
                "(Nunnally (1978)).") in text
        r = copy.deepcopy(results)
        rows = r["reliability"]["data"]
        col = r["reliability"]["columns"].index("omega")
        rows[1][col] = 0.61
        text = self._text(r)
        assert "Every practice reaches" not in text
        assert (f"Below {rules.MIN_SCALE_OMEGA.threshold:.2f}, the usual minimum for research use "
                f"(Nunnally (1978)): Leadership (Teacher survey, 0.61).") in text

    def test_fit_verdict_per_form_from_the_heuristics(self, results, monkeypatch):
        from instrument import rules

        fm = results["cfa"]["teacher"]["fit_measures"]
        text = self._text(results)
        assert "limits (CFI ≥ 0.95, TLI ≥ 0.95, RMSEA ≤ 0.06, SRMR ≤ 0.08; Hu & Bentler (1999))" \
            in _html_unescape(text)
        # MLR: the robust indices where the results have them, else the standard ones
        shown = "; ".join(f"{k.upper()} {fm.get(k + '.robust', fm[k]):.3f}"
                          for k in ("cfi", "tli", "rmsea", "srmr"))
        assert f"Teacher survey: the answers follow the intended structure ({shown})." in text
        monkeypatch.setattr(rules, "FIT_HEURISTICS", (
            rules.Rule("rmsea", 0.05, "<=", rules.FIT_RMSEA_HU_BENTLER.source),))
        text = self._text(results)
        rm = fm.get("rmsea.robust", fm["rmsea"])
        assert (f"Teacher survey: the answers do not follow the intended structure closely "
                f"(RMSEA {rm:.3f}, limit ≤ 0.05), so its practice scores should be read with "
                "caution.") in text
        es = self._text(results, "es")
        assert f"(RMSEA {rm:.3f}, límite ≤ 0.05)" in es


def test_overall_score_definition_is_printed_from_the_bank(results):
    from instrument.bank import load_bank
    from instrument.report.render import _construct_labels
    from instrument.report.adapters import read_bank

    r = copy.deepcopy(results)
    r["bank"]["overall"] = load_bank().to_dict()["overall"]
    sc = from_jsonable(r["scores"])
    labels = _construct_labels(read_bank(r), "en")
    cons = r["bank"]["overall"]["constructs"]
    assert {"teacher", "family"} <= set(sc.loc[sc["construct"] == "overall", "form"])
    want = ("\"Overall\" on the teacher survey and family survey is the item bank's overall score "
            "(Overall partnership practice): the unweighted mean of "
            f"{len(cons)} practice scores ({'; '.join(labels.get(c, c) for c in cons)}), each on "
            "its items as keyed in the item bank, so a higher score means more of every practice.")
    for kind in ("technical", "brief"):
        assert want in _html_unescape(_words(render_html(r, kind))), kind
    cards = _html_unescape(_words(render_html(r, "cards")))
    assert cards.count(want) == sc["school_id"].nunique()
    no_decl = copy.deepcopy(r)
    no_decl["bank"]["overall"] = None            # a bank that declares none
    no_rows = copy.deepcopy(r)
    col = no_rows["scores"]["columns"].index("construct")
    no_rows["scores"]["data"] = [row for row in no_rows["scores"]["data"] if row[col] != "overall"]
    for case in (no_decl, no_rows):
        for kind in ("technical", "brief", "cards"):
            assert "unweighted mean of" not in render_html(case, kind), kind


def test_contrast_figure_names_the_score_it_drew(results):
    html = render_html(results, "technical")
    constructs = {d["construct"] for d in results["linker"]}
    (c,) = constructs
    texts = _svg_texts(html, f"P10→P90 contrasts: school {c} score and poverty")
    assert f"school {c} score" in texts and "poverty" in texts
    assert not [x for x in texts if "engagement" in x]
