"""The shipped item bank: content rules, generated lavaan syntax, reverse coding, package data."""
from __future__ import annotations

import importlib.resources
import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import instrument as ins
from instrument.bank import Bank, Scale, shipped_bank_path
from instrument.cli import main
from instrument.results import dumps
from instrument.rules import MIN_ITEMS_PER_CONSTRUCT

ROOT = Path(__file__).resolve().parents[1]
CONSTRUCTS = ("mindsets", "leadership", "communication", "relationships", "language_culture")
ITEMS_PER_FORM = (5, 8)          # DESIGN.md / issue 3: 5-8 items per construct and form
STEMS = {"mindsets": "mind", "leadership": "lead", "communication": "comm",
         "relationships": "rel", "language_culture": "lang"}
NAME = r"[A-Za-z][A-Za-z0-9_]*"
LINE = re.compile(rf"^({NAME}) =~ ({NAME}(?: \+ {NAME})*)$")


@pytest.fixture(scope="module")
def bank() -> Bank:
    return ins.load_bank()


# ---------------------------------------------------------------- shipped bank and package data
def test_shipped_bank_checks_clean():
    assert ins.check_bank() == []
    res = CliRunner().invoke(main, ["items", "check"])
    assert res.exit_code == 0, res.output
    assert res.output.startswith("OK: ")
    assert "5 constructs, 2 forms" in res.output


def test_bank_loads_from_installed_package_data(bank):
    data = importlib.resources.files("instrument") / "items"
    assert (data / "bank.yaml").is_file()
    assert Path(bank.path) == Path(str(data)) == shipped_bank_path()
    pd.testing.assert_frame_equal(ins.load_bank(Path(str(data)) / "bank.yaml").items, bank.items)
    # the repo-root `items` symlink is the same folder
    assert (ROOT / "items").resolve() == Path(str(data)).resolve()


def test_every_bank_file_is_declared_package_data():
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = conf["tool"]["setuptools"]["package-data"]["instrument"]
    pkg = ROOT / "instrument"
    for f in (pkg / "items").iterdir():
        rel = f.relative_to(pkg).as_posix()
        assert any(Path(rel).match(p) for p in patterns), f"{rel} is not shipped"


def test_contract_columns_and_types(bank):
    assert bank.forms == ("teacher", "family")
    assert bank.languages == ("en", "es")
    assert list(bank.constructs["construct"]) == list(CONSTRUCTS)
    assert {"construct", "label_en", "label_es", "description"} <= set(bank.constructs.columns)
    assert {"item_id", "construct", "form", "scale", "reverse", "text_en", "text_es", "finding",
            "translation_status"} <= set(bank.items.columns)
    assert bank.items["reverse"].dtype == bool
    assert ({"item_id", "form", "scale", "type", "text_en", "text_es"}
            <= set(bank.background.columns))
    for sc in bank.scales.values():
        assert isinstance(sc, Scale)
        assert sc.codes == tuple(range(1, len(sc.codes) + 1))
        assert len(sc.labels_en) == len(sc.labels_es) == len(sc.codes)
        assert len(sc.missing_labels) == len(sc.missing_labels_es) == len(sc.missing_codes)
        assert sc.kind in ("agreement", "frequency")
        assert Scale.from_dict(sc.to_dict()) == sc


# ---------------------------------------------------------------- content rules
def test_every_construct_has_both_forms_with_5_to_8_items(bank):
    for form in bank.forms:
        for c in CONSTRUCTS:
            n = len(bank.items_for(form, c))
            assert ITEMS_PER_FORM[0] <= n <= ITEMS_PER_FORM[1], (form, c, n)
            assert MIN_ITEMS_PER_CONSTRUCT.passes(n)


def test_every_item_has_both_languages(bank):
    for col in ("text_en", "text_es"):
        assert bank.items[col].map(lambda t: isinstance(t, str) and len(t) > 20).all(), col
    assert (bank.items["text_en"] != bank.items["text_es"]).all()
    for word in ("TODO", "TBD", "XXX", "[ES]", "lorem"):
        assert not bank.items["text_es"].str.contains(word, regex=False).any(), word
    # Spanish text reads as Spanish: accents/ñ/¿ or common function words in every item
    spanish = re.compile(r"[áéíóúñ¿]|\b(el|la|los|las|de|que|con|en|mi|su)\b")
    assert bank.items["text_es"].map(lambda t: bool(spanish.search(t))).all()
    for col in ("text_en", "text_es"):
        assert bank.background[col].map(lambda t: isinstance(t, str) and t != "").all()
    assert set(bank.items["translation_status"]) <= {"draft", "reviewed", "back-translated"}


def test_item_ids_are_stable_and_follow_form_and_construct(bank):
    for form, prefix in (("teacher", "t"), ("family", "f")):
        for c in CONSTRUCTS:
            ids = bank.items_for(form, c)
            assert ids == [f"{prefix}_{STEMS[c]}_{k}" for k in range(1, len(ids) + 1)]
    assert bank.items["item_id"].is_unique
    assert not set(bank.items["item_id"]) & set(bank.background["item_id"])


def test_reverse_keyed_items_at_most_one_per_form_and_construct(bank):
    per = bank.items.groupby(["form", "construct"])["reverse"].sum()
    assert (per <= 1).all()
    assert (bank.items.groupby("form")["reverse"].sum() >= 3).all()


def test_every_finding_is_covered_and_blueprint_counts_items(bank):
    bp = bank.blueprint()
    assert list(bp.columns) == ["construct", "finding", "teacher", "family", "total"]
    assert (bp["total"] > 0).all()
    assert bp["teacher"].sum() == len(bank.items_for("teacher"))
    assert bp["family"].sum() == len(bank.items_for("family"))
    counts = bank.items.groupby(["construct", "finding", "form"]).size()
    for row in bp.itertuples(index=False):
        for form in bank.forms:
            assert getattr(row, form) == counts.get((row.construct, row.finding, form), 0)
    assert set(bp["finding"]) == set(bank.findings["finding"])


def test_background_items_cover_role_years_language_and_grade(bank):
    bg = bank.background.set_index("item_id")
    for iid in ("t_bg_role", "t_bg_years", "t_bg_lang", "f_bg_role", "f_bg_years",
                "f_bg_grade", "f_bg_lang"):
        assert iid in bg.index
    assert bg["scale"].isna().all()
    grade = bg.loc["f_bg_grade"]
    assert len(grade["codes"]) == len(grade["labels_en"]) == len(grade["labels_es"]) == 4
    syntax = bank.model_syntax("teacher") + bank.model_syntax("family")
    assert "_bg_" not in syntax


def test_revision_history_and_cognitive_interviews_are_recorded(bank):
    assert {"t_lead_3", "f_comm_1"} <= set(bank.revisions["item_id"])
    assert {"t_lead_3", "f_comm_1"} <= set(bank.cognitive_interviews["item_id"])
    ci = bank.cognitive_interviews
    assert ci["note"].map(lambda t: isinstance(t, str) and len(t) > 20).all()
    assert (bank.items["translation_notes"] != "").sum() >= 3


# ---------------------------------------------------------------- model syntax
@pytest.mark.parametrize("form", ["teacher", "family"])
def test_model_syntax_has_one_line_per_construct_with_exactly_its_items(bank, form):
    lines = bank.model_syntax(form=form).splitlines()
    assert len(lines) == len(CONSTRUCTS)
    seen = []
    for line, c in zip(lines, CONSTRUCTS):
        m = LINE.match(line)
        assert m, line
        assert m.group(1) == c
        ids = m.group(2).split(" + ")
        expected = list(bank.items[(bank.items["form"] == form)
                                   & (bank.items["construct"] == c)]["item_id"])
        assert ids == expected == bank.items_for(form, c)
        seen += ids
    assert seen == list(bank.items[bank.items["form"] == form]["item_id"])


def test_model_syntax_subset_and_bad_options(bank):
    assert bank.model_syntax("family", constructs=["relationships", "mindsets"]).splitlines() == [
        "relationships =~ " + " + ".join(bank.items_for("family", "relationships")),
        "mindsets =~ " + " + ".join(bank.items_for("family", "mindsets"))]
    with pytest.raises(ValueError,
                       match=r"form= must be one of 'teacher', 'family'; got 'parent'\."):
        bank.model_syntax(form="parent")
    with pytest.raises(ValueError, match=r"constructs= must be one of .*got 'trust'"):
        bank.model_syntax(form="teacher", constructs=["trust"])


def test_cli_syntax_prints_the_bank_syntax(bank):
    res = CliRunner().invoke(main, ["items", "syntax", "--form", "family"])
    assert res.exit_code == 0, res.output
    assert res.output == bank.model_syntax(form="family") + "\n"
    res = CliRunner().invoke(main, ["items", "syntax", "--form", "parents"])
    assert res.exit_code == 2 and "form= must be one of" in res.output


# ---------------------------------------------------------------- reverse coding
def test_recode_reverse_flips_codes_and_keeps_missing(bank):
    rev = bank.items[bank.items["reverse"]]
    assert len(rev) >= 6
    df = {}
    for iid in rev["item_id"]:
        sc = bank.scale_of(iid)
        df[iid] = list(sc.codes) + list(sc.missing_codes) + [np.nan]
    n = max(map(len, df.values()))
    frame = pd.DataFrame({k: v + [np.nan] * (n - len(v)) for k, v in df.items()})
    frame["t_mind_1"] = 1.0  # not reverse-keyed: untouched
    before = frame.copy()
    out = bank.recode_reverse(frame)
    pd.testing.assert_frame_equal(frame, before)  # input not modified
    assert (out["t_mind_1"] == 1.0).all()
    for iid in rev["item_id"]:
        sc = bank.scale_of(iid)
        k = len(sc.codes)
        got = out[iid].to_numpy()
        np.testing.assert_array_equal(got[:k], [sc.min + sc.max - x for x in sc.codes])
        np.testing.assert_array_equal(got[:k], list(reversed(sc.codes)))
        np.testing.assert_array_equal(got[k:k + len(sc.missing_codes)], sc.missing_codes)
        assert np.isnan(got[k + len(sc.missing_codes):]).all()
    # twice is the identity
    pd.testing.assert_frame_equal(bank.recode_reverse(out), frame)


def test_recode_reverse_form_filter_integer_dtype_and_bad_value(bank):
    df = pd.DataFrame({"t_mind_6": [1, 2, 4, -99], "f_mind_6": [1, 3, 4, -98]})
    out = bank.recode_reverse(df, form="family")
    assert out["t_mind_6"].tolist() == [1, 2, 4, -99]
    assert out["f_mind_6"].tolist() == [4, 2, 1, -98]
    assert out["f_mind_6"].dtype == df["f_mind_6"].dtype
    with pytest.raises(ValueError, match=r"Column 't_mind_6', row 2: value 7 is not a code of "
                                         r"scale 'agree4' \(1\.\.4\)"):
        bank.recode_reverse(pd.DataFrame({"t_mind_6": [1, 2, 7]}))
    with pytest.raises(ValueError, match="form= must be one of"):
        bank.recode_reverse(df, form="staff")


def test_n_categories(bank):
    assert bank.n_categories("t_mind_1") == 4
    assert bank.n_categories("t_comm_1") == 5
    assert bank.n_categories("f_comm_1") == 5
    assert bank.n_categories("f_comm_6") == 4
    for iid, sid in zip(bank.items["item_id"], bank.items["scale"]):
        assert bank.n_categories(iid) == len(bank.scales[sid].codes)
    with pytest.raises(KeyError, match="not a scale item"):
        bank.n_categories("t_bg_role")


# ---------------------------------------------------------------- show / blueprint commands
def test_show_family_form_in_spanish(bank):
    res = CliRunner().invoke(main, ["items", "show", "--form", "family", "--lang", "es"])
    assert res.exit_code == 0, res.output
    out = " ".join(res.output.split())  # undo wrapping
    assert "Encuesta para familias" in out
    fam = bank.items[bank.items["form"] == "family"]
    for text in fam["text_es"]:
        assert text in out
    for text in fam["text_en"]:
        assert text not in out
    for label in bank.constructs["label_es"]:
        assert label in out
    for label in bank.scales["agree4"].labels_es + bank.scales["times5"].labels_es:
        assert label in out
    assert "Prefiero no responder" in out and "No sé" in out
    assert "Strongly agree" not in out and "t_mind_1" not in out
    assert "¿En qué grado está su hijo(a)?" in out      # background question
    # grouped by construct, in bank order
    pos = [out.index(label) for label in bank.constructs["label_es"]]
    assert pos == sorted(pos)


def test_show_one_construct_in_english_and_bad_language():
    res = CliRunner().invoke(main, ["items", "show", "--form", "teacher", "--construct",
                                    "communication"])
    assert res.exit_code == 0, res.output
    assert "t_comm_7" in res.output and "t_mind_1" not in res.output
    assert "(R)" in res.output and "Never" in res.output
    res = CliRunner().invoke(main, ["items", "show", "--lang", "fr"])
    assert res.exit_code == 2 and "lang= must be one of 'en', 'es'; got 'fr'." in res.output


def test_cli_blueprint_matches_api(bank):
    res = CliRunner().invoke(main, ["items", "blueprint"])
    assert res.exit_code == 0, res.output
    for row in bank.blueprint().itertuples(index=False):
        assert re.search(rf"{row.construct}\s+{row.finding}\s+{row.teacher}\s+{row.family}\s+"
                         rf"{row.total}\b", res.output), row
    md = CliRunner().invoke(main, ["items", "blueprint", "--markdown", "--form", "family"])
    assert md.exit_code == 0 and "| construct | finding | family | total |" in md.output


def test_summary_table(bank):
    t = bank.summary()
    assert list(t.frame["construct"]) == list(CONSTRUCTS)
    assert t.frame["teacher"].sum() == len(bank.items_for("teacher"))
    assert "Translation status" in t.as_text()


def test_bank_round_trips_through_json(bank):
    back = Bank.from_dict(json.loads(dumps(bank)))
    for name in Bank._FRAMES:
        pd.testing.assert_frame_equal(getattr(back, name), getattr(bank, name),
                                      check_dtype=False, obj=name)
    assert back.items["reverse"].dtype == bool
    assert back.scales == bank.scales
    assert back.missing_codes == bank.missing_codes
    assert (back.forms, back.languages, back.name) == (bank.forms, bank.languages, bank.name)
    assert back.model_syntax("family") == bank.model_syntax("family")
    assert back.show(form="family", lang="es") == bank.show(form="family", lang="es")


def test_bank_ships_in_the_built_package_and_loads_from_there(tmp_path):
    """Build the package (setuptools build_py) from a copy of the source and load the bank."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "instrument", src / "instrument", symlinks=True,
                    ignore=shutil.ignore_patterns("__pycache__"))
    build = tmp_path / "build"
    done = subprocess.run([sys.executable, "-c", "import setuptools; setuptools.setup()", "-q",
                           "build_py", "--build-lib", str(build)], cwd=src, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    probe = ("import sys; sys.path.insert(0, sys.argv[1]); import instrument as ins; "
             "b = ins.load_bank(); print(b.path); print(len(b.items), len(b.background))")
    run = subprocess.run([sys.executable, "-c", probe, str(build)], cwd=tmp_path,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    path, counts = run.stdout.splitlines()
    assert Path(path) == build / "instrument" / "items"
    bank = ins.load_bank()
    assert counts == f"{len(bank.items)} {len(bank.background)}"
