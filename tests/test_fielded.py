"""`validate` on fielded data: a real public survey with its own bank and plan, and a third form
added to the shipped bank. Every stage runs or stands aside with a stated reason (exit 0)."""
import json
import re
import shutil
from html import unescape
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from instrument.cli import main

FIELDED = Path(__file__).parent / "fixtures" / "fielded"
ASIDE_STAGES = {"multilevel", "irt", "scores", "linker", "policy"}


@pytest.fixture
def no_pdf(monkeypatch):
    """HTML reports only (the PDF printing is tested elsewhere and is slow)."""
    import instrument.report.pdf as pdf

    monkeypatch.setattr(pdf, "find_chromium", lambda *a, **k: None)


def _text(html: str) -> str:
    html = re.sub(r"<(style|script)\b.*?</\1>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html)))


@pytest.fixture(scope="module")
def verbal_aggression(tmp_path_factory):
    import instrument.report.pdf as pdf

    keep, pdf.find_chromium = pdf.find_chromium, (lambda *a, **k: None)
    try:
        out = tmp_path_factory.mktemp("va")
        res = CliRunner().invoke(main, ["validate", str(FIELDED / "plan.yaml"), "--out", str(out)])
    finally:
        pdf.find_chromium = keep
    return res, out


def test_public_survey_every_stage_runs_or_stands_aside(verbal_aggression):
    res, out = verbal_aggression
    assert res.exit_code == 0, res.output
    payload = json.loads((out / "results.json").read_text())
    stages = {s["name"]: s for s in payload["stages"]}
    for name, s in stages.items():
        if name in ASIDE_STAGES:
            assert s["status"] == "n/a" and s["message"], (name, s)
        else:
            assert s["status"] in ("ok", "warning"), (name, s)
    assert stages["multilevel"]["message"].startswith("the data name no schools")
    assert stages["linker"]["message"].startswith("needs scores, which stood aside")
    r = payload["results"]
    assert set(r) & ASIDE_STAGES == set()
    # the bank's own form, constructs and labels ("no"/"yes" stay text under YAML 1.2)
    assert r["bank"]["forms"] == ["va"] and r["bank"]["languages"] == ["en"]
    assert r["bank"]["scales"]["nyp3"]["labels"] == {"en": ["no", "perhaps", "yes"]}
    assert set(r["cfa"]) == {"va"}
    assert [k for k in r["invariance"] if k != "warnings"] == ["va by gender"]
    # ingest counts are data: one row per file, every row accounted for
    (row,) = r["data"]["rows"]
    assert (row["form"], row["file"], row["read"]) == ("va", "verbal_aggression.csv", 316)
    assert row["read"] == row["used"] + row["quarantined"]
    assert r["data"]["provenance"]["source"] == "fielded"


def test_public_survey_results_and_report_speak_from_its_bank(verbal_aggression):
    _, out = verbal_aggression
    payload = json.loads((out / "results.json").read_text())
    reports = sorted(p.name for p in (out / "reports").iterdir())
    assert reports == ["technical_report.html"]      # no school brief or cards without schools
    html = (out / "reports" / "technical_report.html").read_text()
    text = _text(html)
    assert "Technical report: validity evidence for the Verbal Aggression questionnaire" in text
    for banned in ("Spanish", "Bright Spot", "Stage 2 finding", "five-construct"):
        assert banned not in text and banned not in json.dumps(payload["results"]), banned
    # "school" only where a stage says why it stood aside
    reasons = {s["message"] for s in payload["stages"] if s["status"] == "n/a"}
    rest = text
    for m in sorted(reasons, key=len, reverse=True):
        rest = rest.replace(m, "")
    assert "school" not in rest.lower(), rest[max(0, rest.lower().find("school") - 200):][:400]
    assert "two-construct structure" in text and "District and state results" not in text


def test_a_plan_can_switch_a_stage_off(tmp_path, no_pdf):
    plan = yaml.safe_load((FIELDED / "plan.yaml").read_text())
    plan.update(bank=str(FIELDED / "bank"), stages={"efa": False, "cfa": False,
                                                     "invariance": False})
    plan["data"]["va"]["files"] = [str(FIELDED / "verbal_aggression.csv")]
    p = tmp_path / "plan.yaml"
    p.write_text(yaml.safe_dump(plan))
    # an earlier run's files in the output folder: its error file and a report its log lists
    out = tmp_path / "v"
    (out / "errors").mkdir(parents=True)
    (out / "errors" / "cfa.txt").write_text("an old traceback")
    (out / "reports").mkdir()
    (out / "reports" / "policy_brief.html").write_text("an old brief")
    (out / "run_log.json").write_text(json.dumps({"files": ["reports/policy_brief.html"]}))
    (out / "notes.txt").write_text("the user's own file")
    res = CliRunner().invoke(main, ["validate", str(p), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert not (out / "errors").exists() and not (out / "reports" / "policy_brief.html").exists()
    assert (out / "notes.txt").read_text() == "the user's own file"
    log = json.loads((out / "run_log.json").read_text())
    assert "reports/technical_report.html" in log["files"] and "notes.txt" not in log["files"]
    stages = {s["name"]: s for s in json.loads((tmp_path / "v" / "results.json")
                                               .read_text())["stages"]}
    assert stages["efa"] == {"name": "efa", "status": "n/a", "warnings": [],
                             "message": "switched off by the plan (stages: efa: false)"}
    assert stages["syntax"]["message"].startswith("needs cfa, which stood aside: switched off")


PRINCIPALS = 10   # respondents per school on the principal form (leaders and their deputies)
CONSTRUCTS = ("mindsets", "leadership", "communication", "relationships", "language_culture")
PRINCIPAL_ITEMS = [(f"p_{c[:4]}_{k}", c) for c in CONSTRUCTS for k in (1, 2, 3)]


def _bank_with_principal_form(dest: Path) -> None:
    from instrument.bank import shipped_bank_path

    shutil.copytree(shipped_bank_path(), dest)
    cons = {c["id"]: c["findings"]
            for c in yaml.safe_load((dest / "constructs.yaml").read_text())["constructs"]}
    items = []
    for k, (iid, construct) in enumerate(PRINCIPAL_ITEMS):
        finds = cons[construct]
        items.append({"id": iid, "construct": construct, "finding": finds[k % len(finds)]["key"],
                      "scale": "agree4", "reverse": False,
                      "text": {"en": f"Principal item {k + 1}.", "es": f"Pregunta {k + 1}."},
                      "translation": {"es": {"status": "draft"}}})
    (dest / "principal.yaml").write_text(yaml.safe_dump({"form": "principal", "items": items},
                                                        sort_keys=False))
    man = yaml.safe_load((dest / "bank.yaml").read_text())
    man["forms"].append({"id": "principal", "id_prefix": "p_",
                         "label": {"en": "Principal survey", "es": "Encuesta para directores"}})
    man["files"]["items"].append("principal.yaml")
    (dest / "bank.yaml").write_text(yaml.safe_dump(man, sort_keys=False, allow_unicode=True))


def _principal_file(path: Path, schools: dict[str, str], seed: int) -> None:
    """`PRINCIPALS` school leaders per school answering five correlated constructs (4 codes)."""
    rng = np.random.default_rng(seed)
    rows = []
    for s, district in schools.items():
        for j in range(PRINCIPALS):
            g = rng.normal()
            z = 0.6 * g + 0.8 * rng.normal(size=len(CONSTRUCTS))
            row = {"respondent_id": f"P{s}_{j}", "school_id": s, "district_id": district,
                   "language": "en"}
            for iid, construct in PRINCIPAL_ITEMS:
                y = 0.8 * z[CONSTRUCTS.index(construct)] + 0.6 * rng.normal()
                row[iid] = int(np.digitize(y, [-0.8, 0.0, 0.8]) + 1)
            rows.append(row)
    pd.DataFrame(rows).to_csv(path, index=False)


def test_a_third_form_is_ingested_and_validated(tmp_path, no_pdf):
    from instrument.bank import load_bank
    from instrument.simulate import simulate

    _bank_with_principal_form(tmp_path / "bank")
    bank = load_bank(tmp_path / "bank")
    assert bank.forms == ("teacher", "family", "principal")
    files = simulate("tiny", seed=7, bank=load_bank()).write(tmp_path / "field")
    outcomes = pd.read_csv(files["outcomes"])
    outcomes.assign(roster_principal=PRINCIPALS + 2).to_csv(files["outcomes"], index=False)
    _principal_file(tmp_path / "field" / "principal.csv",
                    outcomes.set_index("school_id")["district_id"].astype(str).to_dict(), seed=3)
    res = CliRunner().invoke(main, ["ingest", str(tmp_path / "field" / "principal.csv"),
                                    "--form", "principal", "--bank", str(tmp_path / "bank")])
    assert res.exit_code == 0, res.output
    n = PRINCIPALS * len(outcomes)
    assert f"read {n} = used {n} + quarantined 0 data rows." in res.output
    plan = {"name": "three-forms", "bank": "bank",
            "data": {"principal": {"files": ["field/principal.csv"]},
                     "outcomes": "field/outcomes.csv"},
            "analysis": {"invariance": [],
                         "outcomes": ["chronic_absence"],
                         "shortform": {"form": "principal", "items_per_construct": 2}},
            "stages": {"efa": False, "syntax": False, "irt": False}}   # kept fast
    p = tmp_path / "plan.yaml"
    p.write_text(yaml.safe_dump(plan, sort_keys=False))
    res = CliRunner().invoke(main, ["validate", str(p), "--out", str(tmp_path / "v")])
    payload = json.loads((tmp_path / "v" / "results.json").read_text())
    bad = [s for s in payload["stages"] if s["status"] == "failed"]
    assert res.exit_code == 0 and not bad, (bad, res.output[-2000:])
    r = payload["results"]
    assert [row["form"] for row in r["data"]["rows"]] == ["principal"]
    assert set(r["cfa"]) == {"principal"} and r["cfa"]["principal"]["converged"]
    assert {s["name"]: s["status"] for s in payload["stages"]}["scores"] == "ok"
    from instrument.results import from_jsonable

    assert "principal" in set(from_jsonable(r["reliability"]["table"])["form"])
    assert "principal" in set(from_jsonable(r["scores"]["table"])["form"])


def test_group_codes_are_shown_with_the_banks_labels():
    """A grouping column that is a background choice item is shown with its labels."""
    from instrument.bank import load_bank
    from instrument.pipeline import _group_names
    from instrument.report import render_html

    names = _group_names(load_bank(), "t_bg_role")
    assert names["1"] == "Classroom teacher" and names["5"] == "Administrator"
    assert _group_names(load_bank(), "language") == {}
    payload = json.loads((Path(__file__).parent / "fixtures" / "report"
                          / "results_example.json").read_text())
    results = payload.get("results", payload)
    results["invariance"]["family"]["group_names"] = {"en": "English", "es": "Spanish"}
    text = _text(render_html(payload, "technical"))
    assert "Groups: English (en), Spanish (es)." in text


def test_plan_data_mapping_file_resolves_against_the_plan_folder(tmp_path):
    """``data: <form>: mapping:`` names a mapping file beside the plan; several files stack."""
    from instrument.bank import load_bank
    from instrument.pipeline import stage_data
    from instrument.plans import load_plan

    sub = tmp_path / "study"
    (sub / "files").mkdir(parents=True)
    df = pd.read_csv(FIELDED / "verbal_aggression.csv").rename(columns={"gender": "sex"})
    df.iloc[:200].to_csv(sub / "files" / "a.csv", index=False)
    df.iloc[200:].assign(S1DoCurse=lambda d: d["S1DoCurse"].where(d.index != 205, "maybe")) \
        .to_csv(sub / "files" / "b.csv", index=False)
    (sub / "map.yaml").write_text("columns: {sex: gender}\nbackground: [gender]\n"
                                  "ignore: [anger]\n")
    plan = sub / "plan.yaml"
    plan.write_text(f"bank: {FIELDED / 'bank'}\n"
                    "data:\n  va:\n    files: [files/a.csv, files/b.csv]\n    mapping: map.yaml\n")
    ctx = {"plan": load_plan(plan), "plan_path": plan, "bank": load_bank(FIELDED / "bank"),
           "out_dir": tmp_path / "out"}
    out = stage_data(ctx)
    assert [(r["file"], r["read"], r["used"], r["quarantined"]) for r in out["rows"]] == [
        ("files/a.csv", 200, 200, 0), ("files/b.csv", 116, 115, 1)]
    assert out["va"]["reasons"] == [{"reason": "text 'maybe' maps to no code of scale 'nyp3'; "
                                     "expected one of its labels (in any language of the bank), "
                                     "a missing label or a code", "rows": 1}]
    rs = ctx["responses"]["va"]
    assert rs.n == 315 and "gender" in rs.data.columns and rs.data["respondent_id"].is_unique


def test_plan_data_keys_are_checked_with_their_line(tmp_path):
    from instrument.plans import PlanError, load_plan

    p = tmp_path / "plan.yaml"
    p.write_text("data:\n  va:\n    files: [a.csv]\n    colums: {sex: gender}\n"
                 "    encoding: klingon\n    sheet: [1]\n    defaults: {x: [2]}\n"
                 "stages:\n  irt: no\n")
    with pytest.raises(PlanError) as e:
        load_plan(p)
    lines = str(e.value).splitlines()
    assert lines[0].startswith(f"{p}:4: data.va.colums: unknown key (did you mean 'columns'?)")
    assert lines[1].startswith(f"{p}:5: data.va.encoding: unknown encoding 'klingon'")
    # a value that may be of several kinds is one problem naming them all
    assert lines[2] == f"{p}:6: data.va.sheet: expected text or a whole number; got [1]"
    assert lines[3] == f"{p}:7: data.va.defaults.x: expected text or a number; got [2]"
    assert lines[4] == f"{p}:9: stages.irt: expected true or false; got 'no'"
    assert len(lines) == 5
