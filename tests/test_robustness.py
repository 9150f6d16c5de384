"""Robustness: every problem reaches the reader, every row is accounted for, the same seed gives
the same bytes. One test per hostile case; each asserts the exact outcome (the error names the
file, row or column and what was expected, or the rows add up)."""
from __future__ import annotations

import json
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
    """The second run has every stage in this process (none in the background), so the bytes
    compared below are also those of the two ways of running a stage."""
    from instrument import pipeline

    a, b = tmp_path_factory.mktemp("tiny_a"), tmp_path_factory.mktemp("tiny_b")
    first = validate(TINY, a)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pipeline, "BACKGROUND_STAGES", ())
        return first, validate(TINY, b)


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


def test_pdf_structure_node_ids_are_renumbered():
    from instrument.report.pdf import reproducible

    a = b"/ID (node00000067)>> /Headers [(node00000067)] /ID (node00000068)"
    b = b"/ID (node00000070)>> /Headers [(node00000070)] /ID (node00000071)"
    assert reproducible(a) == reproducible(b) == (
        b"/ID (node00000001)>> /Headers [(node00000001)] /ID (node00000002)")


def test_pdf_id_name_tree_follows_the_new_ids():
    from instrument.report.pdf import reproducible

    # two prints of one page: the same elements (objects 60, 64, 160) in the same order, with
    # node ids allocated differently, so the name tree (sorted by the old ids) lists them in
    # another order
    def pdf(i60: int, i64: int, i160: int) -> bytes:
        ids = sorted([(i60, b"60 0 R"), (i64, b"64 0 R"), (i160, b"160 0 R")])
        names = b" ".join(b"(node%08d) %s" % (i, ref) for i, ref in ids)
        return (b"60 0 obj <</ID (node%08d)>> 64 0 obj <</ID (node%08d)>> 160 0 obj <</ID "
                b"(node%08d)>>\n1063 0 obj\n<</Limits [(node%08d) (node%08d)]\n/Names [%s]>>"
                % (i60, i64, i160, ids[0][0], ids[-1][0], names))
    a, b = pdf(5, 7, 9), pdf(12, 3, 40)
    assert len(reproducible(b)) == len(b)
    assert reproducible(a) == reproducible(b)
    assert b"/Limits [(node00000001) (node00000003)]\n/Names [(node00000001) 60 0 R " \
           b"(node00000002) 64 0 R (node00000003) 160 0 R]" in reproducible(b)


# --------------------------------------------------------------------------------------------
# One ingest contract: every row read is used or quarantined with its reason and file line
# --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fam_data(toy_bank):
    from instrument.simulate import simulate

    return simulate("tiny", seed=7, bank=toy_bank).family.data


@pytest.fixture
def fam(fam_data):
    return fam_data.copy()


def _ingest(p, toy_bank, **kw):
    from instrument.io import ingest

    res = ingest(p, bank=toy_bank, form="family", **kw)
    assert res.read == res.used + res.quarantined == len(res.responses.data) + res.quarantined
    return res


def _lines(p):
    return p.read_text().splitlines()


def test_ragged_row_with_too_few_fields_is_quarantined(toy_bank, tmp_path, fam):
    p = tmp_path / "f.csv"
    fam.to_csv(p, index=False)
    lines = _lines(p)
    lines[5] = ",".join(lines[5].split(",")[:-3])          # data row 5 loses its last 3 fields
    p.write_text("\n".join(lines) + "\n")
    res = _ingest(p, toy_bank)
    assert res.read == len(fam) and res.quarantined == 1
    row = res.quarantine.iloc[0]
    assert (row["row"], row["line"], row["value"]) == (5, 6, f"{len(fam.columns) - 3} fields")
    assert row["reason"] == (f"the row has {len(fam.columns) - 3} fields; expected "
                             f"{len(fam.columns)} as in the header (a missing or stray delimiter)")


def test_trailing_comma_on_the_first_data_row_quarantines_that_row_only(toy_bank, tmp_path, fam):
    p = tmp_path / "f.csv"
    fam.to_csv(p, index=False)
    lines = _lines(p)
    lines[1] += ","
    p.write_text("\n".join(lines) + "\n")
    res = _ingest(p, toy_bank)
    assert res.quarantine[["row", "line"]].values.tolist() == [[1, 2]]
    assert "expected {} as in the header".format(len(fam.columns)) in res.quarantine["reason"][0]
    assert "trailing" in res.quarantine["reason"][0]
    assert res.used == len(fam) - 1


@pytest.mark.parametrize("spelling", ["NA", "nan", "None", "."])
def test_missing_id_spellings_are_not_schools(toy_bank, tmp_path, fam, spelling):
    fam["school_id"] = fam["school_id"].astype(object)
    fam.loc[[3, 8], "school_id"] = spelling
    p = tmp_path / "f.csv"
    fam.to_csv(p, index=False)
    res = _ingest(p, toy_bank)
    assert res.quarantine[["row", "column", "value"]].values.tolist() == [
        [4, "school_id", spelling], [9, "school_id", spelling]]
    assert res.quarantine["reason"][0] == (f"missing school id: {spelling!r} is a spelling of a "
                                           "missing value; expected a real school id")
    assert spelling not in set(res.responses.data["school_id"])


@pytest.mark.parametrize("value", ["inf", "-inf", "1e400"])
def test_infinite_item_values_are_quarantined(toy_bank, tmp_path, fam, value):
    fam["f_mind_2"] = fam["f_mind_2"].astype(object)
    fam.loc[6, "f_mind_2"] = value
    p = tmp_path / "f.csv"
    fam.to_csv(p, index=False)
    res = _ingest(p, toy_bank)
    q = res.quarantine.iloc[0]
    assert (q["row"], q["line"], q["column"], q["value"]) == (7, 8, "f_mind_2", value)
    assert "expected" in q["reason"] and ("finite" in q["reason"] or "maps to no code" in q["reason"])


def test_a_school_in_two_districts_is_quarantined_with_every_row(toy_bank, tmp_path, fam):
    school = fam.loc[0, "school_id"]
    rows = fam.index[fam["school_id"] == school]
    fam["district_id"] = fam["district_id"].astype(object)
    fam.loc[rows[-1], "district_id"] = "D99"
    p = tmp_path / "f.csv"
    fam.to_csv(p, index=False)
    res = _ingest(p, toy_bank)
    assert sorted(res.quarantine["row"]) == [int(r) + 1 for r in rows]
    assert set(res.quarantine["reason"]) == {
        f"school {school!r} is named in districts {sorted({fam.loc[0, 'district_id'], 'D99'})}; "
        "expected one district per school"}
    assert school not in set(res.responses.data["school_id"])


@pytest.mark.parametrize("sep,name", [(";", "semicolon"), ("\t", "tab")])
def test_delimiter_is_detected_and_named(toy_bank, tmp_path, fam, sep, name):
    p = tmp_path / f"f_{name}.csv"
    fam.to_csv(p, index=False, sep=sep)
    res = _ingest(p, toy_bank)
    assert res.quarantined == 0 and res.used == len(fam) and res.delimiter == sep
    assert f"{sep!r}-separated" in res.summary().title


def test_multi_sheet_workbook_names_its_sheets(toy_bank, tmp_path, fam):
    import openpyxl

    from instrument.io import IngestError

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "responses"
    ws.append(list(fam.columns))
    for r in fam.head(5).itertuples(index=False):
        ws.append([None if isinstance(v, float) and np.isnan(v) else v for v in r])
    wb.create_sheet("notes").append(["read me"])
    p = tmp_path / "f.xlsx"
    wb.save(p)
    with pytest.raises(IngestError, match=r"f\.xlsx: the workbook has 2 sheets \['responses', "
                                          r"'notes'\]; expected the sheet to read named in the "
                                          r"mapping \(sheet: 'responses', say\)"):
        _ingest(p, toy_bank)
    assert _ingest(p, toy_bank, mapping={"sheet": "responses"}).used == 5


def test_quarantine_lines_do_not_drift_after_blank_lines(toy_bank, tmp_path, fam):
    fam.loc[9, "f_mind_2"] = 7
    p = tmp_path / "f.csv"
    fam.to_csv(p, index=False)
    lines = _lines(p)
    lines[3:3] = ["", ""]                                   # two blank lines before data row 3
    p.write_text("\n".join(lines) + "\n")
    res = _ingest(p, toy_bank)
    assert res.quarantine[["row", "line", "column"]].values.tolist() == [[10, 13, "f_mind_2"]]
    assert p.read_text().splitlines()[12].split(",")[0] == fam.loc[9, "respondent_id"]


def test_duplicated_header_is_named_as_in_the_file(toy_bank, tmp_path, fam):
    from instrument.io import IngestError

    p = tmp_path / "f.csv"
    fam.to_csv(p, index=False)
    lines = _lines(p)
    lines[0] = lines[0].replace("f_mind_2", "f_mind_1")
    p.write_text("\n".join(lines) + "\n")
    j = list(fam.columns).index("f_mind_2") + 1
    with pytest.raises(IngestError, match=rf"f\.csv: line 1: column 'f_mind_1' appears twice in "
                                          rf"the header \(columns {j - 1} and {j}\)") as e:
        _ingest(p, toy_bank)
    assert "f_mind_1.1" not in str(e.value)


def test_unknown_encoding_in_a_mapping(toy_bank, tmp_path, fam):
    from instrument.io import IngestError

    p = tmp_path / "f.csv"
    fam.to_csv(p, index=False)
    m = tmp_path / "map.yaml"
    m.write_text("encoding: klingon-8\n")
    with pytest.raises(IngestError) as e:
        _ingest(p, toy_bank, mapping=m)
    assert str(e.value) == (f"{m}:1: encoding: unknown encoding 'klingon-8'; expected a Python "
                            "codec name such as utf-8, latin-1 or cp1252")


# --------------------------------------------------------------------------------------------
# Command line: one line naming the file and what was expected; paths checked before work
# --------------------------------------------------------------------------------------------

def _cli(args, toy_bank=None, monkeypatch=None):
    from click.testing import CliRunner

    from instrument.cli import main

    if toy_bank is not None:
        from instrument.cli import data as cli_data
        monkeypatch.setattr(cli_data, "_bank", lambda: toy_bank)
    res = CliRunner().invoke(main, args)
    assert "Traceback" not in res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    return res


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory, toy_bank):
    from instrument.simulate import simulate

    out = tmp_path_factory.mktemp("tiny_files")
    return {k: Path(v) for k, v in simulate("tiny", seed=7, bank=toy_bank).write(out).items()}


@pytest.mark.parametrize("option", ["--json"])
def test_json_into_a_missing_folder(tiny_files, tmp_path, option):
    res = _cli(["cfa", "f =~ t_mind_1 + t_mind_2 + t_mind_3", str(tiny_files["teacher"]),
                option, str(tmp_path / "nope" / "r.json")])
    assert res.exit_code == 2
    assert (f"Invalid value for '{option}': {tmp_path / 'nope' / 'r.json'}: folder "
            f"'{tmp_path / 'nope'}' does not exist; expected an existing, writable folder."
            in res.output)


def test_out_into_a_missing_folder(tiny_files, tmp_path, toy_bank, monkeypatch):
    res = _cli(["ingest", str(tiny_files["family"]), "--form", "family", "--out",
                str(tmp_path / "nope" / "ok.csv")], toy_bank, monkeypatch)
    assert res.exit_code == 2 and "folder" in res.output and "does not exist" in res.output
    assert not (tmp_path / "nope").exists()


def test_quarantine_into_an_unwritable_folder(tiny_files, toy_bank, monkeypatch):
    res = _cli(["ingest", str(tiny_files["family"]), "--form", "family", "--quarantine",
                "/proc/quarantine"], toy_bank, monkeypatch)
    assert res.exit_code == 2
    assert "Invalid value for '--quarantine': /proc/quarantine: folder '/proc' is not writable" \
        in res.output


def test_ingest_always_writes_the_quarantine_next_to_the_output(tiny_files, tmp_path, toy_bank,
                                                                monkeypatch):
    res = _cli(["ingest", str(tiny_files["family"]), "--form", "family", "--out",
                str(tmp_path / "ok.csv")], toy_bank, monkeypatch)
    assert res.exit_code == 0, res.output
    assert (tmp_path / "family.quarantine.csv").exists()
    n = len(pd.read_csv(tiny_files["family"]))
    assert f"read {n} = used {n} + quarantined 0 data rows." in res.output


def test_scores_accounts_for_every_row(tiny_files, tmp_path, toy_bank, monkeypatch):
    fam = pd.read_csv(tiny_files["family"])
    fam.loc[[2, 5], "language"] = "fr"
    p = tmp_path / "fam.csv"
    fam.to_csv(p, index=False)
    res = _cli(["scores", str(p), "--form", "family", "--out", str(tmp_path / "s.csv")],
               toy_bank, monkeypatch)
    assert res.exit_code == 0, res.output
    q = pd.read_csv(tmp_path / "fam.quarantine.csv")
    assert q["line"].tolist() == [4, 7] and set(q["column"]) == {"language"}
    sc = pd.read_csv(tmp_path / "s.csv")
    scored = int(sc.loc[sc["construct"] == "overall", "n"].sum())
    assert f"Rows: read {len(fam)} = used {len(fam) - 2} + quarantined 2; {scored} of the " \
           f"{len(fam) - 2} used respondents have an overall score" in res.output


def test_simulate_given_a_folder(tmp_path):
    res = _cli(["simulate", str(tmp_path), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2
    assert f"Error: {tmp_path}: is a folder; expected a population plan (a YAML file)" in res.output


def test_rollup_on_a_file_that_is_not_scores(tiny_files):
    res = _cli(["rollup", str(tiny_files["teacher"])])
    assert res.exit_code == 1
    assert res.output.startswith(f"Error: {tiny_files['teacher']}: school scores is missing "
                                 "column(s) ['form', 'construct', 'score'")


def test_change_without_a_year_column(tiny_files):
    res = _cli(["change", str(tiny_files["outcomes"])])
    assert res.exit_code == 1
    assert res.output.strip() == (f"Error: {tiny_files['outcomes']}: no column 'year'; expected "
                                  "school scores of several years stacked with a year column (or "
                                  "name it with --year-column).")


def test_report_on_a_json_that_is_not_results(tmp_path):
    p = tmp_path / "other.json"
    p.write_text('{"name": "not results"}')
    res = _cli(["report", str(p), "--out", str(tmp_path / "r"), "--no-pdf"])
    assert res.exit_code == 1
    assert f"Error: {p}: not a results file: expected a JSON object with the results of at " \
           "least one stage" in res.output
    assert not (tmp_path / "r").exists()


def test_missing_model_file_is_not_a_syntax_error(tiny_files):
    res = _cli(["cfa", "nowhere/model.lav", str(tiny_files["teacher"])])
    assert res.exit_code == 1
    assert res.output.strip() == ("Error: nowhere/model.lav: model file not found; expected a "
                                  "lavaan syntax file or syntax text such as 'f =~ x1 + x2 + x3'.")


def test_model_with_negative_df_is_refused(tiny_files):
    res = _cli(["cfa", "f =~ t_mind_1 + t_mind_2 + t_mind_3\nt_mind_1 ~~ t_mind_2",
                str(tiny_files["teacher"])])
    assert res.exit_code == 1
    assert "the model is not identified: df = -1" in res.output
    assert "cfi" not in res.output.lower()


def test_infinite_value_in_a_table_names_file_row_and_column(tiny_files, tmp_path):
    t = pd.read_csv(tiny_files["teacher"])
    t.loc[4, "t_mind_2"] = np.inf
    p = tmp_path / "t.csv"
    t.to_csv(p, index=False)
    res = _cli(["twolevel", "level: 1\nf =~ t_mind_1 + t_mind_2 + t_mind_3\nlevel: 2\n"
                "fb =~ t_mind_1 + t_mind_2 + t_mind_3", str(p), "--cluster", "school_id"])
    assert res.exit_code == 1
    assert res.output.strip() == (f"Error: {p}: data row 5, column 't_mind_2': an infinite value "
                                  "(inf); expected finite numbers (1 such cell(s) in the column).")


def test_infinite_or_empty_model_column_in_the_api():
    from instrument.sem.cfa import cfa

    rng = np.random.default_rng(1)
    x = pd.DataFrame(rng.normal(size=(50, 3)), columns=["a", "b", "c"])
    x.loc[3, "b"] = np.inf
    with pytest.raises(ValueError, match=r"data= column 'b' holds 1 infinite value\(s\) \(first "
                                         r"in data row 4\); expected finite numbers"):
        cfa("f =~ a + b + c", x)
    x["b"] = np.nan
    with pytest.raises(ValueError, match=r"data= column 'b' has no observed values"):
        cfa("f =~ a + b + c", x)


def test_semicolon_table_and_duplicated_header_in_a_plain_table(tiny_files, tmp_path):
    t = pd.read_csv(tiny_files["teacher"])
    semi = tmp_path / "semi.csv"
    t.to_csv(semi, index=False, sep=";")
    res = _cli(["icc", str(semi), "--value", "t_mind_2", "--cluster", "school_id"])
    assert res.output.strip() == (f"Error: {semi}: line 1: the header is one column split by "
                                  "';'; expected ','-separated columns (save the file with ',' "
                                  "as the delimiter).")
    dup = tmp_path / "dup.csv"
    t.rename(columns={"t_mind_2": "t_mind_1"}).to_csv(dup, index=False)
    res = _cli(["reliability", str(dup), "--scale", "m=t_mind_1,t_mind_3"])
    j = list(t.columns).index("t_mind_2") + 1
    assert res.output.strip() == (f"Error: {dup}: line 1: column 't_mind_1' appears twice in the "
                                  f"header (columns {j - 1} and {j}); expected each column name "
                                  "once.")


def test_unexpected_errors_are_one_line_and_debug_shows_the_traceback(monkeypatch, tmp_path):
    from click.testing import CliRunner

    import instrument.pipeline as pipeline
    from instrument.cli import main

    def boom(*a, **k):
        raise KeyError("grade_band")
    monkeypatch.setattr(pipeline, "validate", boom)
    res = CliRunner().invoke(main, ["validate", "--out", str(tmp_path / "v")])
    assert res.exit_code == 1
    assert res.output.strip() == ("Error: KeyError: 'grade_band' (unexpected; `instrument --debug "
                                  "...` shows the traceback)")
    res = CliRunner().invoke(main, ["--debug", "validate", "--out", str(tmp_path / "v")])
    assert isinstance(res.exception, KeyError)


def test_technical_report_states_the_rows_quarantined(tiny_twice):
    run, _ = tiny_twice
    rows = run.results["data"]["rows"]
    assert [r["form"] for r in rows] == ["teacher", "family"]
    assert all(r["read"] == r["used"] + r["quarantined"] for r in rows)
    html = (run.out_dir / "reports" / "technical_report.html").read_text()
    assert "Rows read, used and quarantined" in html
    assert "0 row(s) quarantined in all." in html


def test_validate_on_fielded_files_accounts_for_every_row(tmp_path, tiny_files):
    """The data stage of `validate` on fielded files: quarantine written, counts in results."""
    import yaml

    from instrument.bank import load_bank
    from instrument.pipeline import stage_data
    from instrument.simulate import simulate

    bank = load_bank()
    sim = simulate("tiny", seed=7, bank=bank)
    paths = sim.write(tmp_path / "field")
    fam = pd.read_csv(paths["family"])
    fam["school_id"] = fam["school_id"].astype(object)
    fam.loc[[1, 4], "school_id"] = "NA"
    fam.to_csv(paths["family"], index=False)
    plan = tmp_path / "plan.yaml"
    plan.write_text(yaml.safe_dump({"data": {"teacher": "field/teacher.csv",
                                             "family": "field/family.csv",
                                             "outcomes": "field/outcomes.csv"}}))
    ctx = {"plan": yaml.safe_load(plan.read_text()), "plan_path": plan, "bank": bank,
           "out_dir": tmp_path / "out"}
    out = stage_data(ctx)
    fam_rows = next(r for r in out["rows"] if r["form"] == "family")
    assert (fam_rows["read"], fam_rows["used"], fam_rows["quarantined"]) == (len(fam),
                                                                             len(fam) - 2, 2)
    q = pd.read_csv(tmp_path / "out" / fam_rows["quarantine_file"], keep_default_na=False)
    assert q["line"].tolist() == [3, 6] and set(q["value"]) == {"NA"}


def test_link_on_a_constant_outcome_is_refused(tmp_path):
    from instrument.linker import simulate_link_data

    scores, outcomes = simulate_link_data(seed=3)
    outcomes["chronic_absence"] = 0.12
    s, o = tmp_path / "s.csv", tmp_path / "o.csv"
    scores.to_csv(s, index=False)
    outcomes.to_csv(o, index=False)
    res = _cli(["link", str(s), str(o)])
    assert res.exit_code == 1
    assert "outcome 'chronic_absence' is constant (0.12) across the" in res.output
    assert "expected an outcome that varies between schools" in res.output
    assert "beta" not in res.output


def test_unknown_invariance_group_in_a_plan_names_the_plan_key():
    from instrument.bank import load_bank
    from instrument.pipeline import stage_invariance
    from instrument.simulate import simulate

    bank = load_bank()
    sim = simulate("tiny", seed=7, bank=bank)
    ctx = {"plan": {"analysis": {"invariance": [{"form": "family", "group": "langauge"}]}},
           "bank": bank, "responses": {"teacher": sim.teacher, "family": sim.family},
           "outcomes": sim.outcomes}
    with pytest.raises(ValueError, match=r"plan analysis.invariance: group 'langauge' is not a "
                                         r"column of the family responses or of the school "
                                         r"outcomes; expected one of \[.*'language'"):
        stage_invariance(ctx)


def test_a_broken_construct_file_gives_one_error_not_a_cascade(tmp_path):
    import shutil

    from instrument.bank import BankError, load_bank, shipped_bank_path

    dest = tmp_path / "bank"
    shutil.copytree(shipped_bank_path(), dest)
    (dest / "constructs.yaml").write_text("constructs: 3\n")
    with pytest.raises(BankError) as err:
        load_bank(dest)
    text = [str(p) for p in err.value.problems]
    assert any(t.startswith(f"{dest / 'constructs.yaml'}:1") or "constructs.yaml:1" in t
               for t in text), text
    assert not [t for t in text if t.rstrip().endswith("expected one of")
                or "expected one of  " in t or "expected one of (" in t], text
    assert not [t for t in text if "unknown construct" in t], text


def test_reml_variance_components_that_did_not_converge_are_flagged_beside_the_table(
        tiny_twice):
    import copy

    from instrument.report.render import render_html

    run, _ = tiny_twice
    payload = json.loads((run.out_dir / RESULTS_FILE).read_text())
    results = copy.deepcopy(payload["results"])
    vc = results["policy"]["variance_components"]["teacher"]
    vc["converged"] = False
    html = render_html({"results": results, "stages": payload["stages"]}, "technical")
    flag = ("<strong>Warning\n(policy).</strong> variance_components / teacher: did not "
            "converge</p>")
    assert flag in html
    assert html.index(flag) > html.index("Variance between districts and schools")
    assert "<strong>policy</strong>: variance_components / teacher: did not converge" in html
