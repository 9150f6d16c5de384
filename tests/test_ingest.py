"""Ingest: round trips in every format, malformed files, quarantine accounting and safety."""
from __future__ import annotations

import json

import numpy as np
import openpyxl
import pandas as pd
import pyreadstat
import pytest

import instrument as ins
from instrument.io import IngestError, ingest, load_mapping, neutralize_cell
from instrument.simulate import simulate


@pytest.fixture(scope="module")
def sim(toy_bank):
    return simulate("tiny", seed=7, bank=toy_bank)


@pytest.fixture
def fam(sim):
    return sim.family.data.copy()


def write_xlsx(df: pd.DataFrame, path, formulas: dict | None = None) -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(list(df.columns))
    for row in df.itertuples(index=False):
        ws.append([None if (isinstance(v, float) and np.isnan(v)) else v for v in row])
    for (r, c), f in (formulas or {}).items():
        ws.cell(row=r, column=c, value=f)
    wb.save(path)


def write(df: pd.DataFrame, path, fmt: str) -> None:
    if fmt == "csv":
        df.to_csv(path, index=False)
    elif fmt == "xlsx":
        write_xlsx(df, path)
    elif fmt == "sav":
        pyreadstat.write_sav(df, str(path))
    elif fmt == "dta":
        pyreadstat.write_dta(df, str(path))
    elif fmt == "parquet":
        df.to_parquet(path)


def scale_of(bank, item):
    sid = bank.items.set_index("item_id").loc[item, "scale"]
    return sid, bank.scales[sid]


def expected_scale(bank, item) -> str:
    """The 'expected ...' text of an item's scale, as ingest words it."""
    sid, sc = scale_of(bank, item)
    ms = ", ".join(str(m) for m in sorted(sc.missing_codes))
    return f"scale '{sid}': codes {min(sc.codes)}..{max(sc.codes)} or missing codes {ms}"


def check_accounting(res) -> None:
    assert res.read == res.used + res.quarantined
    assert res.used == len(res.responses.data)
    assert res.quarantined == res.quarantine["row"].nunique()


# --- round trips -------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["csv", "xlsx", "sav", "dta", "parquet"])
@pytest.mark.parametrize("form", ["teacher", "family"])
def test_round_trip_identical(sim, toy_bank, tmp_path, fmt, form):
    d = sim.responses(form).data
    p = tmp_path / f"{form}.{fmt}"
    write(d, p, fmt)
    res = ingest(p, bank=toy_bank, form=form)
    check_accounting(res)
    assert res.quarantined == 0 and res.format == fmt
    pd.testing.assert_frame_equal(res.responses.data, d)


def test_round_trip_through_simulate_cli_files(sim, toy_bank, tmp_path):
    paths = sim.write(tmp_path)
    res = ingest(paths["teacher"], bank=toy_bank, form="teacher")
    pd.testing.assert_frame_equal(res.responses.data, sim.teacher.data)
    truth = json.loads(paths["truth"].read_text())
    assert truth["meta"]["seed"] == 7 and "items" in truth["truth"]


def test_chunked_reading_matches_and_counts_rows_across_chunks(sim, toy_bank, tmp_path, fam):
    fam.loc[10, "respondent_id"] = fam.loc[2, "respondent_id"]   # duplicate in a later chunk
    fam.loc[25, "f_comm_1"] = 9
    p = tmp_path / "f.csv"
    fam.to_csv(p, index=False)
    whole = ingest(p, bank=toy_bank, form="family")
    small = ingest(p, bank=toy_bank, form="family", chunksize=7)
    pd.testing.assert_frame_equal(whole.responses.data, small.responses.data)
    pd.testing.assert_frame_equal(whole.quarantine, small.quarantine)
    q = small.quarantine.set_index("row")
    assert q.loc[11, "reason"] == ("duplicate respondent id: first seen on row 3; expected unique "
                                   "ids")
    assert q.loc[26, "column"] == "f_comm_1"
    check_accounting(small)


# --- malformed files ---------------------------------------------------------------------------------

def test_csv_unknown_column(toy_bank, tmp_path, fam):
    fam["favourite_colour"] = "blue"
    p = tmp_path / "f.csv"
    fam.to_csv(p, index=False)
    with pytest.raises(IngestError, match=r"f\.csv: column 'favourite_colour': unknown column; "
                                          r"expected an item of the family form"):
        ingest(p, bank=toy_bank, form="family")


def test_csv_missing_item_column(toy_bank, tmp_path, fam):
    p = tmp_path / "f.csv"
    fam.drop(columns=["f_lang_3"]).to_csv(p, index=False)
    with pytest.raises(IngestError, match=r"f\.csv: column 'f_lang_3': item column missing"):
        ingest(p, bank=toy_bank, form="family")


def test_csv_wrong_form_items(toy_bank, tmp_path, sim):
    p = tmp_path / "t.csv"
    sim.teacher.data.to_csv(p, index=False)
    with pytest.raises(IngestError, match=r"column 't_mind_1': item 't_mind_1' belongs to the "
                                          r"teacher form, but the file is ingested as "
                                          r"form='family'"):
        ingest(p, bank=toy_bank, form="family")


def test_csv_row_problems(toy_bank, tmp_path, fam):
    fam["respondent_id"] = fam["respondent_id"].astype(object)
    fam["school_id"] = fam["school_id"].astype(object)
    fam.loc[0, "f_mind_2"] = 7                     # out of range
    fam.loc[1, "respondent_id"] = fam.loc[0, "respondent_id"]  # duplicate
    fam.loc[2, "school_id"] = None                 # missing school id
    fam.loc[3, "language"] = "fr"                  # wrong language
    fam.loc[4, fam.columns[5:]] = np.nan           # nothing answered
    fam.loc[5, "f_comm_1"] = -99                   # a missing code: kept, as missing
    p = tmp_path / "f.csv"
    fam.to_csv(p, index=False)
    res = ingest(p, bank=toy_bank, form="family", quarantine_dir=tmp_path / "q")
    check_accounting(res)
    q = res.quarantine.set_index("row")
    assert res.quarantined == 5 and res.read == len(fam)
    assert q.loc[1, "reason"] == f"code 7 is out of range; expected {expected_scale(toy_bank, 'f_mind_2')}"
    assert q.loc[1, "column"] == "f_mind_2" and q.loc[1, "value"] == "7.0"
    assert q.loc[2, "reason"].startswith("duplicate respondent id: first seen on row 1")
    assert q.loc[3, "reason"] == "missing school id: expected a non-blank school id"
    assert q.loc[4, "reason"] == ("language 'fr' is not recognised; expected one of the bank's "
                                  "languages ['en', 'es']")
    assert q.loc[5, "reason"].startswith("no item answered")
    kept = res.responses.data.set_index("respondent_id")
    assert np.isnan(kept.loc[fam.loc[5, "respondent_id"], "f_comm_1"])
    written = pd.read_csv(res.quarantine_path, dtype=str, keep_default_na=False)
    assert list(written.columns) == ["row", "line", "column", "value", "reason"]
    assert written["row"].astype(int).tolist() == res.quarantine["row"].tolist()
    assert (written["line"].astype(int) == written["row"].astype(int) + 1).all()


def test_xlsx_text_labels_formulas_and_injection(toy_bank, tmp_path, fam):
    fam = fam.astype({c: object for c in ["f_mind_1", "f_mind_2", "f_comm_2"]})
    sid1, sc1 = scale_of(toy_bank, "f_mind_1")
    fam.loc[0, "f_mind_1"] = sc1.labels_en[-1]             # English label -> top code
    fam.loc[1, "f_mind_1"] = sc1.labels_es[0].upper()      # Spanish label, any case -> 1
    fam.loc[2, "f_mind_2"] = "Agreee"              # maps to no code
    fam.loc[3, "f_comm_2"] = "=HYPERLINK(\"http://x\",\"y\")"  # a formula (never evaluated)
    fam.loc[6, "f_mind_2"] = "@SUM(1+1)"            # text that a spreadsheet would run
    p = tmp_path / "f.xlsx"
    j = list(fam.columns).index("f_mind_3") + 1
    write_xlsx(fam, p, formulas={(6, j): "=1+2"})    # data row 5: formula with no cached value
    res = ingest(p, bank=toy_bank, form="family", quarantine_dir=tmp_path)
    check_accounting(res)
    kept = res.responses.data.set_index("respondent_id")
    assert kept.loc[fam.loc[0, "respondent_id"], "f_mind_1"] == max(sc1.codes)
    assert kept.loc[fam.loc[1, "respondent_id"], "f_mind_1"] == min(sc1.codes)
    q = res.quarantine.set_index("row")
    sid2, _ = scale_of(toy_bank, "f_mind_2")
    assert q.loc[3, "reason"].startswith(f"text 'Agreee' maps to no code of scale '{sid2}'")
    assert q.loc[4, "column"] == "f_comm_2"
    assert q.loc[5, "reason"].startswith("formula without a cached value")
    assert q.loc[7, "value"] == "@SUM(1+1)"
    assert res.quarantined == 4
    text = (tmp_path / "f.quarantine.csv").read_text()
    assert "'=HYPERLINK" in text and ",=HYPERLINK" not in text
    assert ",'@SUM(1+1)," in text


def test_sav_value_labels_reversed_are_recoded(toy_bank, tmp_path, fam):
    sid, sc = scale_of(toy_bank, "f_mind_2")
    lo, hi = min(sc.codes), max(sc.codes)
    labels = dict(zip(sc.codes, reversed(sc.labels_en)))   # coded in the opposite direction
    stored = fam.copy()
    stored["f_mind_2"] = lo + hi - fam["f_mind_2"]
    p = tmp_path / "f.sav"
    pyreadstat.write_sav(stored, str(p), variable_value_labels={"f_mind_2": labels})
    res = ingest(p, bank=toy_bank, form="family")
    check_accounting(res)
    assert res.recoded == ("f_mind_2",) and res.quarantined == 0
    pd.testing.assert_frame_equal(res.responses.data, fam)
    assert "Recoded by the file's value labels: f_mind_2." in res.summary().as_text()


def test_dta_zero_based_codes_recoded_by_labels(toy_bank, tmp_path, fam):
    _, sc = scale_of(toy_bank, "f_comm_1")
    stored = fam.copy()
    stored["f_comm_1"] = fam["f_comm_1"] - 1                 # 0-based codes in the file
    labels = {c - 1: lab for c, lab in zip(sc.codes, sc.labels_en)}
    p = tmp_path / "f.dta"
    pyreadstat.write_dta(stored, str(p), variable_value_labels={"f_comm_1": labels})
    res = ingest(p, bank=toy_bank, form="family")
    check_accounting(res)
    pd.testing.assert_frame_equal(res.responses.data, fam)


def test_sav_unknown_value_label(toy_bank, tmp_path, fam):
    sid, sc = scale_of(toy_bank, "f_mind_2")
    labels = {**dict(zip(sc.codes, sc.labels_en)), max(sc.codes): "Totally agree"}
    p = tmp_path / "f.sav"
    pyreadstat.write_sav(fam, str(p), variable_value_labels={"f_mind_2": labels})
    with pytest.raises(IngestError, match=(
            rf"f\.sav: column 'f_mind_2': value label 'Totally agree' of code .* is not a label "
            rf"of the bank's scale '{sid}'")):
        ingest(p, bank=toy_bank, form="family")
    res = ingest(p, bank=toy_bank, form="family",
                 mapping={"labels": {sid: {"Totally agree": max(sc.codes)}}})
    assert res.recoded == () and res.quarantined == 0


def test_sav_with_matching_labels_and_bad_rows(toy_bank, tmp_path, fam):
    fam.loc[0, "f_lang_1"] = 9
    fam.loc[1, "language"] = "de"
    p = tmp_path / "f.sav"
    _, sc = scale_of(toy_bank, "f_lang_1")
    labels = {**dict(zip(sc.codes, sc.labels_en)), **dict(zip(sc.missing_codes,
                                                              sc.missing_labels))}
    pyreadstat.write_sav(fam, str(p), variable_value_labels={"f_lang_1": labels})
    res = ingest(p, bank=toy_bank, form="family")
    check_accounting(res)
    q = res.quarantine.set_index("row")
    assert q.loc[1, "reason"].startswith("code 9 is out of range")
    assert q.loc[2, "reason"] == "language 'de' is not recognised; expected one of the bank's languages ['en', 'es']"


def test_sav_user_missing_codes_are_missing(toy_bank, tmp_path, fam):
    fam.loc[0, "f_comm_3"] = 9                     # declared user-missing in the file
    fam.loc[1, "f_comm_3"] = 8                     # not declared: out of range
    p = tmp_path / "f.sav"
    pyreadstat.write_sav(fam, str(p), missing_ranges={"f_comm_3": [9]})
    res = ingest(p, bank=toy_bank, form="family")
    check_accounting(res)
    assert res.quarantine["row"].tolist() == [2]
    assert res.quarantine.loc[0, "reason"] == (
        f"code 8 is out of range; expected {expected_scale(toy_bank, 'f_comm_3')}")
    assert np.isnan(res.responses.data.loc[0, "f_comm_3"])


def test_dta_wrong_form_column(toy_bank, tmp_path, fam):
    fam["form"] = "family"
    fam.loc[3, "form"] = "teacher"
    p = tmp_path / "f.dta"
    pyreadstat.write_dta(fam, str(p))
    res = ingest(p, bank=toy_bank, form="family")
    check_accounting(res)
    assert res.quarantined == 1
    assert res.quarantine.loc[0, "reason"] == ("form 'teacher' does not match the form ingested "
                                               "('family')")
    assert res.quarantine.loc[0, "row"] == 4


def test_parquet_non_integer_code_and_empty_school(toy_bank, tmp_path, fam):
    fam.loc[0, "f_comm_4"] = 2.5
    fam["school_id"] = fam["school_id"].astype(object)
    fam.loc[1, "school_id"] = "   "
    p = tmp_path / "f.parquet"
    fam.to_parquet(p)
    res = ingest(p, bank=toy_bank, form="family")
    check_accounting(res)
    q = res.quarantine.set_index("row")
    assert q.loc[1, "reason"] == (
        f"code 2.5 is not an integer; expected {expected_scale(toy_bank, 'f_comm_4')}")
    assert q.loc[2, "reason"].startswith("missing school id")


def test_empty_and_unreadable_files(toy_bank, tmp_path):
    p = tmp_path / "e.csv"
    p.write_text("")
    with pytest.raises(IngestError, match=r"e\.csv: the file is empty; expected a header row"):
        ingest(p, bank=toy_bank, form="family")
    p = tmp_path / "bad.xlsx"
    p.write_bytes(b"not a zip")
    with pytest.raises(IngestError, match=r"bad\.xlsx: not a readable \.xlsx workbook"):
        ingest(p, bank=toy_bank, form="family")
    p = tmp_path / "x.json"
    p.write_text("{}")
    with pytest.raises(IngestError, match=r"x\.json: unknown file type '\.json'"):
        ingest(p, bank=toy_bank, form="family")


def test_missing_language_column_with_two_languages(toy_bank, tmp_path, fam):
    p = tmp_path / "f.csv"
    fam.drop(columns=["language"]).to_csv(p, index=False)
    with pytest.raises(IngestError, match=r"column 'language': required column missing \(the "
                                          r"bank has 2 languages"):
        ingest(p, bank=toy_bank, form="family")


def test_file_without_school_or_respondent_ids(toy_bank, tmp_path, fam):
    """No school column: rows belong to no school; no respondent column: ids are row numbers."""
    p = tmp_path / "f.csv"
    fam.drop(columns=["school_id", "district_id", "respondent_id"]).to_csv(p, index=False)
    res = ingest(p, bank=toy_bank, form="family")
    check_accounting(res)
    d = res.responses.data
    assert d["school_id"].isna().all() and d["district_id"].isna().all()
    used_rows = sorted(set(range(1, res.read + 1)) - set(res.quarantine["row"]))
    assert d["respondent_id"].tolist() == [f"f:{r}" for r in used_rows]


def test_district_spelled_missing_is_quarantined(toy_bank, tmp_path, fam):
    p = tmp_path / "f.csv"
    f = fam.copy()
    f["district_id"] = f["district_id"].astype(object)
    f.loc[[0, 1, 2], "district_id"] = ["NA", "nan", "."]
    f.to_csv(p, index=False)
    res = ingest(p, bank=toy_bank, form="family")
    check_accounting(res)
    q = res.quarantine[res.quarantine["column"] == "district_id"].set_index("row")
    assert list(q.index) == [1, 2, 3]
    assert q.loc[1, "reason"] == ("missing district id: 'NA' is a spelling of a missing value; "
                                  "expected a real district id")
    assert q.loc[1, "line"] == 2


# --- Qualtrics-style export ------------------------------------------------------------------------------

def qualtrics_export(df: pd.DataFrame, bank, path, *, durations=None) -> dict:
    """Write df as a Qualtrics export: renamed columns, 2 extra header rows, text labels."""
    items = [c for c in df.columns if c in set(bank.items["item_id"])]
    qnames = {it: f"Q{k + 1}_1" for k, it in enumerate(items)}
    scale_of = bank.items.set_index("item_id")["scale"]
    out = pd.DataFrame({
        "StartDate": "2026-03-01 10:00:00", "EndDate": "2026-03-01 10:12:00", "Status": "0",
        "IPAddress": "10.0.0.1",
        "Duration (in seconds)": durations if durations is not None else 600,
        "ResponseId": df["respondent_id"].to_numpy(), "SchoolID": df["school_id"].to_numpy(),
        "DistrictID": df["district_id"].to_numpy(),
        "UserLanguage": np.where(df["language"] == "es", "ES-ES", "EN")})
    for it in items:
        sc = bank.scales[scale_of[it]]
        vals = []
        for v, lang in zip(df[it], df["language"]):
            if np.isnan(v):
                vals.append("Prefer not to say" if len(vals) % 2 else "")
            else:
                labels = sc.labels_es if lang == "es" else sc.labels_en
                vals.append(labels[list(sc.codes).index(int(v))])
        out[qnames[it]] = vals
    for b in ("years_at_school", "child_grade"):
        if b in df.columns:
            out[b] = df[b].to_numpy()
    header2 = {c: f"Question text of {c}" for c in out.columns}
    header3 = {c: json.dumps({"ImportId": c}) for c in out.columns}
    full = pd.concat([pd.DataFrame([header2, header3]), out.astype(object)], ignore_index=True)
    full.to_csv(path, index=False)
    mapping = {"columns": {**{q: it for it, q in qnames.items()}, "SchoolID": "school_id",
                           "DistrictID": "district_id"}}
    return mapping


def test_qualtrics_round_trip_with_text_labels(sim, toy_bank, tmp_path):
    d = sim.family.data
    p = tmp_path / "qualtrics.csv"
    mapping = qualtrics_export(d, toy_bank, p)
    mp = tmp_path / "map.yaml"
    import yaml
    mp.write_text(yaml.safe_dump(mapping))
    res = ingest(p, bank=toy_bank, form="family", mapping=mp)
    check_accounting(res)
    assert res.format == "qualtrics" and res.read == len(d) and res.quarantined == 0
    got = res.responses.data
    assert "IPAddress" not in got.columns and "duration" not in got.columns
    pd.testing.assert_frame_equal(got, d)
    back = ins.IngestResult.from_dict(json.loads(json.dumps(res.to_dict())))
    pd.testing.assert_frame_equal(back.responses.data, got)
    assert (back.read, back.used, back.quarantined) == (res.read, res.used, res.quarantined)


def test_qualtrics_flags_and_exclusions(sim, toy_bank, tmp_path):
    d = sim.family.data.copy().iloc[:20].reset_index(drop=True)
    items = list(sim.family.items)
    d.loc[0, items] = 3.0                               # straight-lining (>= 10 items)
    d.loc[1, items] = np.resize([1.0, 2.0, 3.0], len(items))
    durations = np.full(len(d), 600)
    durations[1] = len(items)                           # 1 s per item: too fast
    p = tmp_path / "qualtrics.csv"
    mapping = qualtrics_export(d, toy_bank, p, durations=durations)
    flagged = ingest(p, bank=toy_bank, form="family", mapping=mapping)
    check_accounting(flagged)
    assert flagged.quarantined == 0
    f = flagged.flags.set_index("row")
    assert f.loc[1, "flag"] == "straightlining" and f.loc[2, "flag"] == "too_fast"
    assert "1.00 s/item" in f.loc[2, "detail"]
    assert not f["excluded"].any()
    excluded = ingest(p, bank=toy_bank, form="family", mapping=mapping,
                      exclude_flags=("straightlining", "too_fast"))
    check_accounting(excluded)
    assert excluded.quarantined == 2 and excluded.used == 18
    assert excluded.quarantine["reason"].str.startswith(("straight-lining", "too fast")).all()
    with pytest.raises(ValueError, match=r"exclude_flags= must contain only"):
        ingest(p, bank=toy_bank, form="family", mapping=mapping, exclude_flags=("slow",))


def test_qualtrics_unmapped_label_and_missing_label(sim, toy_bank, tmp_path):
    d = sim.family.data.iloc[:10].reset_index(drop=True)
    p = tmp_path / "qualtrics.csv"
    mapping = qualtrics_export(d, toy_bank, p)
    raw = pd.read_csv(p, dtype=str, keep_default_na=False)
    raw.loc[2, "Q1_1"] = "Totally agree"               # data row 1 (after 2 header rows)
    raw.loc[3, "Q2_1"] = "Prefer not to say"           # a missing label: kept as missing
    raw.to_csv(p, index=False)
    res = ingest(p, bank=toy_bank, form="family", mapping=mapping)
    check_accounting(res)
    assert res.quarantine["row"].tolist() == [1]
    assert res.quarantine.loc[0, "column"] == "Q1_1"
    fixed = ingest(p, bank=toy_bank, form="family",
                   mapping={**mapping, "labels": {scale_of(toy_bank, sim.family.items[0])[0]:
                                                  {"Totally agree": 2}}})
    assert fixed.quarantined == 0
    assert fixed.responses.data.loc[0, sim.family.items[0]] == 2
    assert np.isnan(fixed.responses.data.loc[1, sim.family.items[1]])


def test_mapping_errors(toy_bank, tmp_path, fam):
    p = tmp_path / "f.csv"
    fam.to_csv(p, index=False)
    with pytest.raises(IngestError) as e:
        ingest(p, bank=toy_bank, form="family", mapping={"colums": {}})
    assert str(e.value) == (
        "<mapping>: colums: unknown key (did you mean 'columns'?); expected one of ['columns', "
        "'labels', 'language_values', 'defaults', 'ignore', 'background', 'sheet', 'format', "
        "'encoding']")
    with pytest.raises(IngestError) as e:
        ingest(p, bank=toy_bank, form="family", mapping={"labels": {"agree4": {"x": "four"}}})
    assert str(e.value) == "<mapping>: labels.agree4.x: expected a whole number; got 'four'"


def test_mapping_file_is_read_as_yaml_1_2_and_every_problem_has_its_line(tmp_path):
    m = tmp_path / "map.yaml"
    m.write_text("labels:\n  agree4: {No: 1, Yes: 2}\n")
    assert load_mapping(m) == {"labels": {"agree4": {"No": 1, "Yes": 2}}}
    m.write_text("labels:\n  agree4: {No: 1, Yes: 2}\n  freq5: {x: true}\nignore: q9\n")
    with pytest.raises(IngestError) as e:
        load_mapping(m)
    assert str(e.value).splitlines() == [
        f"{m}:3: labels.freq5.x: expected a whole number; got True",
        f"{m}:4: ignore: expected a list; got str"]


def test_defaults_and_duration_errors(toy_bank, tmp_path, fam):
    fam = fam.drop(columns=["language"])
    fam["duration"] = "600"
    fam.loc[0, "duration"] = "ten minutes"
    p = tmp_path / "f.csv"
    fam.to_csv(p, index=False)
    res = ingest(p, bank=toy_bank, form="family", mapping={"defaults": {"language": "en"}})
    check_accounting(res)
    assert (res.responses.data["language"] == "en").all()
    assert res.quarantine.loc[0, "reason"] == "duration 'ten minutes' is not a number of seconds"


# --- safety ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("value, expected", [
    ("=SUM(A1)", "'=SUM(A1)"), ("+cmd", "'+cmd"), ("-2+3", "'-2+3"), ("@x", "'@x"),
    ("-99", "-99"), ("+1.5", "+1.5"), ("plain", "plain"), (3, 3), (None, None)])
def test_neutralize_cell(value, expected):
    assert neutralize_cell(value) == expected


def test_public_api_exports():
    assert ins.ingest is ingest and ins.IngestResult is not None


class WithBackground:
    """The test bank plus a `background` table (as the shipped bank has)."""

    def __init__(self, bank, background):
        self._bank = bank
        self.background = background

    def __getattr__(self, name):
        return getattr(self._bank, name)


def test_bank_background_columns(toy_bank, tmp_path, fam):
    bg = pd.DataFrame({"item_id": ["x_bg_years", "x_bg_role"], "form": "family",
                       "type": ["integer", "choice"]})
    bank = WithBackground(toy_bank, bg)
    fam["x_bg_years"] = "3"
    fam.loc[4, "x_bg_years"] = "three"
    fam["x_bg_role"] = "parent"
    p = tmp_path / "f.csv"
    fam.to_csv(p, index=False)
    res = ingest(p, bank=bank, form="family")
    check_accounting(res)
    assert res.quarantine["row"].tolist() == [5]
    assert res.quarantine.loc[0, "reason"] == "x_bg_years 'three' is not a number"
    d = res.responses.data
    assert d["x_bg_years"].dtype == np.int64 and (d["x_bg_role"] == "parent").all()


def test_latin1_csv_needs_declared_encoding(toy_bank, tmp_path, fam):
    fam["district_id"] = "Distrito Peñasco"
    p = tmp_path / "f.csv"
    fam.to_csv(p, index=False, encoding="latin-1")
    with pytest.raises(IngestError, match=r"f\.csv: not utf-8-sig text .*'encoding: latin-1'"):
        ingest(p, bank=toy_bank, form="family")
    res = ingest(p, bank=toy_bank, form="family", mapping={"encoding": "latin-1"})
    check_accounting(res)
    assert (res.responses.data["district_id"] == "Distrito Peñasco").all()


def test_xlsx_value_without_header(toy_bank, tmp_path, fam):
    p = tmp_path / "f.xlsx"
    write_xlsx(fam, p, formulas={(4, len(fam.columns) + 2): "stray"})
    with pytest.raises(IngestError, match=r"f\.xlsx: row 3: cell [A-Z]+4 holds 'stray' but its "
                                          r"column has no header"):
        ingest(p, bank=toy_bank, form="family")


def test_csv_row_with_too_many_fields(toy_bank, tmp_path, fam):
    p = tmp_path / "f.csv"
    fam.to_csv(p, index=False)
    lines = p.read_text().splitlines()
    lines[3] += ",surplus"
    p.write_text("\n".join(lines) + "\n")
    res = ingest(p, bank=toy_bank, form="family")
    check_accounting(res)
    assert res.quarantine[["row", "line", "value"]].values.tolist() == [
        [3, 4, f"{len(fam.columns) + 1} fields"]]
    assert res.quarantine.loc[0, "reason"] == (
        f"the row has {len(fam.columns) + 1} fields; expected {len(fam.columns)} as in the "
        "header (a missing or stray delimiter, e.g. a trailing one)")

def test_xlsx_trailing_empty_rows_are_not_data_but_inner_ones_are(toy_bank, tmp_path, fam):
    p = tmp_path / "f.xlsx"
    n = len(fam)
    write_xlsx(fam, p, formulas={(n + 4, 1): " "})          # a blank-looking cell after the data
    res = ingest(p, bank=toy_bank, form="family")
    assert res.read == n and res.quarantined == 0
    wb = openpyxl.load_workbook(p)
    wb.active.insert_rows(3)                                # an empty row between data rows 1, 2
    wb.save(p)
    res = ingest(p, bank=toy_bank, form="family")
    check_accounting(res)
    assert res.read == n + 1 and res.quarantine["row"].unique().tolist() == [2]
