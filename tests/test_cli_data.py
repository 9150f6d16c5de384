"""CLI: `instrument simulate`, `instrument ingest`, `instrument scores` (bank swapped for the toy)."""
from __future__ import annotations

import json

import pandas as pd
import pytest
from click.testing import CliRunner

from instrument.cli import data as cli_data
from instrument.cli import main


@pytest.fixture(autouse=True)
def toy(monkeypatch, toy_bank):
    monkeypatch.setattr(cli_data, "_bank", lambda path=None: toy_bank)


def test_help_lists_commands():
    res = CliRunner().invoke(main, ["--help"])
    for cmd in ("simulate", "ingest", "scores"):
        assert cmd in res.output


def test_simulate_writes_files_and_is_reproducible(tmp_path):
    r = CliRunner()
    a = r.invoke(main, ["simulate", "tiny", "--out", str(tmp_path / "a"), "--seed", "3"])
    b = r.invoke(main, ["simulate", "tiny", "--out", str(tmp_path / "b"), "--seed", "3"])
    assert a.exit_code == 0, a.output
    assert b.exit_code == 0, b.output
    for f in ("teacher.csv", "family.csv", "outcomes.csv", "truth.json"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()
    assert json.loads((tmp_path / "a" / "truth.json").read_text())["meta"]["seed"] == 3


def test_simulate_bad_plan_message(tmp_path):
    p = tmp_path / "p.yaml"
    p.write_text("simulation: {schools: {n: 1}}\n")
    res = CliRunner().invoke(main, ["simulate", str(p), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2
    missing = ["districts", "grade_band", "locale", "enrollment", "poverty", "el_share",
               "engagement_poverty_correlation"]
    assert res.output.splitlines() == [
        f"Error: {p}:1: simulation.schools.n: expected a whole number >= 2; got 1",
        *(f"{p}:1: simulation.schools.{k}: required key missing" for k in missing),
        f"{p}:1: simulation.forms: required key missing",
        f"{p}:1: simulation.outcomes: required key missing"]


def test_ingest_and_scores(tmp_path):
    r = CliRunner()
    assert r.invoke(main, ["simulate", "default", "--out", str(tmp_path)]).exit_code == 0
    t = pd.read_csv(tmp_path / "teacher.csv", dtype=str, keep_default_na=False)
    t.loc[0, "t_mind_1"] = "9"
    t.to_csv(tmp_path / "teacher_bad.csv", index=False)
    res = r.invoke(main, ["ingest", str(tmp_path / "teacher_bad.csv"), "--form", "teacher",
                          "--quarantine", str(tmp_path / "q"), "--out", str(tmp_path / "ok.csv")])
    assert res.exit_code == 0, res.output
    assert f"read {len(t)} = used {len(t) - 1} + quarantined 1" in res.output
    q = pd.read_csv(tmp_path / "q" / "teacher_bad.quarantine.csv")
    assert q.loc[0, "row"] == 1 and q.loc[0, "column"] == "t_mind_1"
    res = r.invoke(main, ["scores", str(tmp_path / "teacher.csv"), "--form", "teacher",
                          "--outcomes", str(tmp_path / "outcomes.csv"),
                          "--out", str(tmp_path / "scores.csv")])
    assert res.exit_code == 0, res.output
    sc = pd.read_csv(tmp_path / "scores.csv")
    assert "respondent_id" not in sc.columns and sc["school_id"].nunique() == 300
    sup = sc[sc["suppressed"]]
    assert len(sup) > 0 and sup[["mean", "se", "score", "band"]].isna().all().all()
    assert (sup["suppression_reason"].str.contains("gate")).all()
    assert "school(s) with suppressed results" in res.output


def test_ingest_error_is_clean(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("respondent_id,school_id,language,bogus\n1,S1,en,3\n")
    res = CliRunner().invoke(main, ["ingest", str(p), "--form", "teacher"])
    assert res.exit_code == 2
    assert "x.csv: column 'bogus': unknown column" in res.output
    assert "Traceback" not in res.output
