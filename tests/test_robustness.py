"""Robustness: every problem reaches the reader, every row is accounted for, the same seed gives
the same bytes. One test per hostile case; each asserts the exact outcome (the error names the
file, row or column and what was expected, or the rows add up)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from instrument.multilevel import BOUNDARY_NOTE, icc, min_cluster_size
from instrument.pipeline import RESULTS_FILE, RUN_LOG_FILE, validate
from instrument.results import collect_warnings
from instrument.rules import SCHOOL_MEAN_RELIABILITY

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "instrument" / "analyses" / "tiny.yaml"


# --------------------------------------------------------------------------------------------
# Boundary estimates: ICC(1) = 0 is a legal value
# --------------------------------------------------------------------------------------------

def test_icc1_zero_has_no_minimum_school_size():
    assert min_cluster_size(0.0, SCHOOL_MEAN_RELIABILITY) is None
    assert min_cluster_size(0.2, SCHOOL_MEAN_RELIABILITY) == 10   # .7 * .8 / (.2 * .3) = 9.33
    with pytest.raises(ValueError, match=r"icc1= must be in \[0, 1\); got -0.1"):
        min_cluster_size(-0.1, SCHOOL_MEAN_RELIABILITY)


def test_icc1_zero_summary_carries_the_boundary_note():
    # school means identical, so the REML between-school variance is at its bound 0
    df = pd.DataFrame({"y": [1.0, 2.0, 3.0] * 4, "school": np.repeat(["a", "b", "c", "d"], 3)})
    r = icc(df, "y", "school")
    assert r.icc1 == 0.0 and r.tau00 == 0.0
    assert BOUNDARY_NOTE in r.summary().notes


def test_icc_on_a_constant_says_what_is_wrong():
    df = pd.DataFrame({"y": [2.0] * 8, "school": np.repeat(["a", "b"], 4)})
    with pytest.raises(ValueError, match=r"column 'y' is constant; expected values that vary "
                                         r"between respondents of a 'school'"):
        icc(df, "y", "school")


# --------------------------------------------------------------------------------------------
# Warnings attached to results
# --------------------------------------------------------------------------------------------

def test_collect_warnings_names_where_each_warning_sits():
    result = {"teacher": {"converged": False, "warnings": [], "estimates": {"__frame__": "records",
                                                                          "columns": [],
                                                                          "data": []}},
              "family": {"converged": True, "warnings": ["some estimated ov variances are "
                                                         "negative (Heywood case): ['f_1']"]},
              "variance_components": {"teacher": {"converged": False}}}
    assert collect_warnings(result) == [
        "teacher: did not converge",
        "family: some estimated ov variances are negative (Heywood case): ['f_1']",
        "variance_components / teacher: did not converge"]


# --------------------------------------------------------------------------------------------
# The shipped tiny plan, run twice with its seed
# --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_twice(tmp_path_factory):
    a, b = tmp_path_factory.mktemp("tiny_a"), tmp_path_factory.mktemp("tiny_b")
    return validate(TINY, a), validate(TINY, b)


def test_tiny_plan_with_icc1_zero_runs_every_stage(tiny_twice):
    run, _ = tiny_twice
    status = {s.name: s.status for s in run.stages}
    assert run.ok, [(s.name, s.message) for s in run.stages if s.status not in ("ok", "warning")]
    assert status["multilevel"] == "warning"
    ml = next(s for s in run.stages if s.name == "multilevel")
    assert any("ICC(1) = 0 for" in w and "boundary estimate" in w for w in ml.warnings)
    for stage in ("scores", "linker", "policy", "reports"):
        assert status[stage] in ("ok", "warning"), (stage, status[stage])
    k = pd.DataFrame(**{k: v for k, v in run.results["multilevel"]["min_k"].items()
                        if k in ("columns", "data")})
    icc_t = pd.DataFrame(**{k: v for k, v in run.results["multilevel"]["icc"].items()
                            if k in ("columns", "data")})
    zero = icc_t.loc[icc_t["icc1"] == 0, ["form", "construct"]]
    assert len(zero)
    assert k.merge(zero)["k"].isna().all()


def test_tiny_plan_warnings_reach_the_stage_table_and_the_report(tiny_twice):
    run, _ = tiny_twice
    payload = json.loads((run.out_dir / RESULTS_FILE).read_text())
    stages = {s["name"]: s for s in payload["stages"]}
    assert stages["multilevel"]["status"] == "warning" and stages["multilevel"]["warnings"]
    html = (run.out_dir / "reports" / "technical_report.html").read_text()
    assert "Warnings in this run" in html
    assert html.count('class="warning"') >= len(run.warnings)
    assert "ICC(1) = 0 for" in html


def test_validate_twice_with_one_seed_writes_the_same_bytes(tiny_twice):
    a, b = (r.out_dir for r in tiny_twice)
    assert (a / RESULTS_FILE).read_bytes() == (b / RESULTS_FILE).read_bytes()
    files = sorted(p.relative_to(a) for p in (a / "reports").rglob("*") if p.is_file())
    assert {p.suffix for p in files} >= {".html"}
    for rel in files:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    text = (a / RESULTS_FILE).read_text()
    assert str(a) not in text and '"seconds"' not in text
    log = json.loads((a / RUN_LOG_FILE).read_text())
    assert log["out_dir"] == str(a.resolve())
    assert [s["name"] for s in log["stages"]] == [s.name for s in tiny_twice[0].stages]
    assert all(s["seconds"] >= 0 for s in log["stages"])


def test_pdf_dates_are_fixed(monkeypatch):
    from instrument.report.pdf import fixed_dates

    raw = (b"<<\n/Producer (Skia/PDF m156)\n/CreationDate (D:20261202181525+00'00')\n"
           b"/ModDate (D:20261202181525+00'00')>>\n")
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    blank = fixed_dates(raw)
    assert len(blank) == len(raw) and b"CreationDate" not in blank and b"Skia" in blank
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    dated = fixed_dates(raw)
    assert len(dated) == len(raw)
    assert b"/CreationDate (D:20231114221320Z)" in dated
    assert b"/ModDate (D:20231114221320Z)" in dated
