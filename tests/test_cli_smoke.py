"""`instrument validate` end to end on a small plan: every stage runs, results and reports are
written, no respondent identifier leaves the data stage, and a failing stage is reported with a
non-zero exit while the other stages still run."""
import json
import re
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from instrument.cli import main

PLAN = Path(__file__).parent / "fixtures" / "pipeline" / "small.yaml"
STAGES = ["bank", "data", "item_analysis", "efa", "cfa", "syntax", "reliability", "invariance",
          "multilevel", "scores", "linker", "irt", "irt_dif", "policy", "reports"]


def test_help_lists_commands():
    res = CliRunner().invoke(main, ["--help"])
    assert res.exit_code == 0, res.output
    for cmd in ("validate", "cfa", "invariance", "items", "simulate", "ingest", "link", "report"):
        assert cmd in res.output


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("validate")
    res = CliRunner().invoke(main, ["validate", str(PLAN), "--out", str(out)])
    return res, out


def test_every_stage_runs(run):
    res, out = run
    assert res.exit_code == 0, res.output
    payload = json.loads((out / "results.json").read_text())
    assert [s["name"] for s in payload["stages"]] == STAGES
    # every stage finished; one that finished with warnings lists them
    assert all(s["status"] in ("ok", "warning") for s in payload["stages"]), payload["stages"]
    assert all(bool(s["warnings"]) == (s["status"] == "warning") for s in payload["stages"])
    assert set(STAGES) <= set(payload["results"])
    # the table stars the stages run in a separate process and says what the total is
    table = res.output.split("  stage ", 1)[1]
    assert re.findall(r"^  (\w+)\s+\S+\s+[\d.]+\*", table, re.M) == ["invariance", "linker",
                                                                     "irt_dif"]
    assert re.search(r"^  total\s+15/15 ok\s+[\d.]+\n  \(total: time elapsed; \* ran in a "
                     r"separate process", table, re.M), table


def test_reports_written(run):
    res, out = run
    for name in ("technical_report.html", "policy_brief.html", "school_cards.html",
                 "policy_brief_es.html", "school_cards_es.html"):
        assert (out / "reports" / name).stat().st_size > 1000
    made = len(list((out / "reports").glob("*.pdf")))
    assert re.search(rf"PDF reports made: {made}\b", res.output), res.output[-500:]


def test_cards_are_those_the_final_results_give(run, tmp_path):
    """validate writes the score cards before the background stages are recorded: they are the
    cards the final results.json renders, byte for byte."""
    from instrument.report import load_results, render

    res, out = run
    payload = load_results(out / "results.json")
    for lang, name in (("en", "school_cards.html"), ("es", "school_cards_es.html")):
        (again,) = render(payload, "cards", tmp_path / lang, ("html",), lang=lang)
        assert again.read_text() == (out / "reports" / name).read_text()


def test_validate_says_when_no_pdf_is_made(tmp_path, monkeypatch):
    """Without Chromium the reports are HTML only and validate says so and why."""
    monkeypatch.setenv("INSTRUMENT_CHROMIUM", str(tmp_path / "none"))
    plan = yaml.safe_load(PLAN.read_text())
    plan["simulation"]["schools"]["n"] = 30
    p = tmp_path / "plan.yaml"
    p.write_text(yaml.safe_dump(plan))
    import instrument.pipeline as P
    monkeypatch.setattr(P, "STAGES", [s for s in P.STAGES if s[0] in ("bank", "data",
                                                                          "reports")])
    res = CliRunner().invoke(main, ["validate", str(p), "--out", str(tmp_path / "v")])
    assert "PDF reports made: 0 of 5. No PDF: " in res.output
    assert "apt-get install -y chromium" in res.output
    assert not list((tmp_path / "v" / "reports").glob("*.pdf"))


def test_no_respondent_id_in_results_or_reports(run):
    _, out = run
    ids = set()
    for form in ("teacher", "family"):
        import pandas as pd
        ids |= set(pd.read_csv(out / "data" / f"{form}.csv")["respondent_id"].astype(str))
    text = (out / "results.json").read_text()
    assert "respondent_id" not in text
    for page in (out / "reports").glob("*.html"):
        html = page.read_text()
        assert "respondent_id" not in html
        assert not [i for i in list(ids)[:500] if f">{i}<" in html]


def test_failing_stage_is_reported_and_others_run(tmp_path):
    plan = yaml.safe_load(PLAN.read_text())
    plan["analysis"] = {"invariance": [{"form": "family", "group": "shoe_size"}]}
    p = tmp_path / "plan.yaml"
    p.write_text(yaml.safe_dump(plan))
    res = CliRunner().invoke(main, ["validate", str(p), "--out", str(tmp_path / "v")])
    assert res.exit_code == 1
    payload = json.loads((tmp_path / "v" / "results.json").read_text())
    status = {s["name"]: s["status"] for s in payload["stages"]}
    assert status["invariance"] == "failed" and "shoe_size" in next(
        s["message"] for s in payload["stages"] if s["name"] == "invariance")
    assert status["scores"] == "ok" and status["linker"] == "ok"
    assert (tmp_path / "v" / "errors" / "invariance.txt").exists()


def test_a_misspelled_plan_key_is_refused_with_its_line(tmp_path):
    p = tmp_path / "plan.yaml"
    p.write_text(PLAN.read_text() + "analysis:\n  estimater: ML\n")
    line = len(PLAN.read_text().splitlines()) + 2
    res = CliRunner().invoke(main, ["validate", str(p), "--out", str(tmp_path / "v")])
    assert res.exit_code != 0
    assert (f"{p}:{line}: analysis.estimater: unknown key (did you mean 'estimator'?)"
            in res.output)
    assert not (tmp_path / "v" / "results.json").exists()


def test_unreadable_plan_is_a_clear_error(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("simulation: [unclosed\n")
    res = CliRunner().invoke(main, ["validate", str(p), "--out", str(tmp_path / "v")])
    assert res.exit_code != 0 and "bad.yaml" in res.output and "YAML" in res.output
