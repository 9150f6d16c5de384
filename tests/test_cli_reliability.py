"""`instrument reliability` and `instrument icc` parse arguments, call the API and write JSON."""
import json
from pathlib import Path

import pandas as pd
from click.testing import CliRunner
from numpy.testing import assert_allclose

from instrument.cli import main

FIX = Path(__file__).parent / "fixtures"


def test_help_lists_commands():
    res = CliRunner().invoke(main, ["--help"])
    assert res.exit_code == 0 and "reliability" in res.output and "icc" in res.output


def test_reliability_command(tmp_path):
    d = json.loads((FIX / "reliability" / "d_bfi_reliability.json").read_text())["per_factor"]
    out = tmp_path / "rel.json"
    res = CliRunner().invoke(main, [
        "reliability", str(FIX / "reliability" / "bfi.csv"),
        "--scale", "A=A1,A2,A3,A4,A5", "--scale", "C=C1,C2,C3,C4,C5",
        "--reverse", "A1", "--reverse", "C4,C5", "--score-range", "1,6", "--json", str(out)])
    assert res.exit_code == 0, res.output
    assert "raw_alpha" in res.output
    payload = json.loads(out.read_text())
    tab = pd.DataFrame(payload["data"], columns=payload["columns"])
    # psych's default (pairwise, all 2800 rows) after reverse keying
    assert_allclose(tab["raw_alpha"], [d["A"]["psych_default_all_rows_pairwise"]["raw_alpha"],
                                       d["C"]["psych_default_all_rows_pairwise"]["raw_alpha"]],
                    atol=1e-10)
    assert list(tab["reversed"]) == ["A1", "C4,C5"]


def test_reliability_command_errors():
    f = str(FIX / "reliability" / "bfi.csv")
    res = CliRunner().invoke(main, ["reliability", f, "--scale", "A=A1"])
    assert res.exit_code != 0 and "NAME=ITEM1,ITEM2" in res.output
    res = CliRunner().invoke(main, ["reliability", f, "--scale", "A=A1,Z9"])
    assert res.exit_code != 0 and "Z9" in res.output
    res = CliRunner().invoke(main, ["reliability", f, "--scale", "A=A1,A2", "--score-range", "x"])
    assert res.exit_code != 0 and "MIN,MAX" in res.output


def test_icc_command(tmp_path):
    ref = json.loads((FIX / "multilevel" / "f_mathach_icc.json").read_text())
    out = tmp_path / "icc.json"
    res = CliRunner().invoke(main, ["icc", str(FIX / "multilevel" / "MathAchieve.csv"),
                                    "--value", "MathAch", "--value", "SES",
                                    "--cluster", "School", "--json", str(out)])
    assert res.exit_code == 0, res.output
    payload = json.loads(out.read_text())
    assert_allclose(payload["MathAch"]["icc2"], ref["MathAch"]["anova"]["icc2_anova"], atol=1e-10)
    assert_allclose(payload["SES"]["icc1"], ref["SES"]["lme4_REML"]["icc1"], atol=1e-6)
    res = CliRunner().invoke(main, ["icc", str(FIX / "multilevel" / "MathAchieve.csv"),
                                    "--value", "MathAch", "--cluster", "school"])
    assert res.exit_code != 0 and "no column 'school'" in res.output
