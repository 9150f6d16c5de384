"""Broken copies of the shipped bank give `file:line: what was expected`, never a traceback.

Each case copies the shipped bank into tmp_path, breaks one file in one way, and checks that
`check_bank`, `load_bank` (BankError) and `instrument items check` all name the file, the line
and what was expected.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

import instrument as ins
from instrument.bank import BankError, BankProblem, shipped_bank_path
from instrument.cli import main


def _copy(tmp_path: Path) -> Path:
    dest = tmp_path / "bank"
    shutil.copytree(shipped_bank_path(), dest)
    return dest


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"test setup: {old!r} must occur once in {path.name}"
    path.write_text(text.replace(old, new), encoding="utf-8")


def _line_of(path: Path, marker: str, offset: int = 0) -> int:
    lines = path.read_text(encoding="utf-8").splitlines()
    hits = [i + 1 for i, line in enumerate(lines) if line.rstrip().endswith(marker)]
    assert hits, f"test setup: no line of {path.name} ends with {marker!r}"
    if offset is None:  # the last of several lines (e.g. the second of two duplicate ids)
        return hits[-1]
    assert len(hits) == 1, f"test setup: one line of {path.name} must end with {marker!r}"
    return hits[0] + offset


def _drop_items(path: Path, ids: set[str]) -> None:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["items"] = [it for it in data["items"] if it["id"] not in ids]
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")


T_MIND_3 = ("  - id: t_mind_3\n    construct: mindsets\n    finding: family_knowledge\n"
            "    scale: agree4\n    reverse: false\n")

# name: (file, [(old, new)], marker in the broken file, line offset from marker, fragments)
CASES = {
    "bad_yaml": (
        "scales.yaml", [("kind: agreement\n", "kind: agreement: strong\n")],
        "kind: agreement: strong", 0,
        ["invalid YAML", "mapping values are not allowed here", "expected well-formed YAML"]),
    "duplicate_id": (
        "teacher.yaml", [("  - id: t_mind_3\n", "  - id: t_mind_2\n")],
        "- id: t_mind_2", None,
        ["duplicate item id 't_mind_2'", "first defined at", "expected every item id to be unique"]),
    "unknown_scale": (
        "teacher.yaml", [(T_MIND_3, T_MIND_3.replace("agree4", "agree5"))],
        "scale: agree5", 0, ["unknown scale 'agree5'", "expected one of agree4, freq5, times5"]),
    "missing_translation": (
        "family.yaml",
        [("      es: Cuando comparto ideas sobre mi hijo(a), la escuela las toma en cuenta.\n",
          "")],
        "en: When I share ideas about my child, the school takes them into account.", -1,
        ["item f_mind_3", "missing Spanish ('es') 'text'", "expected text in every language"]),
    "too_few_items": (
        "family.yaml", "drop:f_rel_1,f_rel_2,f_rel_3,f_rel_4", "form: family", 0,
        ["construct 'relationships' has 2 items on the family form", "expected at least 3"]),
    "unknown_form": (
        "family.yaml", [("\nform: family\n", "\nform: parents\n")], "form: parents", 0,
        ["unknown form 'parents'", "expected one of teacher, family"]),
    "item_file_on_no_form": (
        "family.yaml", [("\nform: family\n", "\n")], "items:", 0,
        ["missing required field 'form'", "expected the form these items belong to"]),
    "unknown_construct": (
        "teacher.yaml", [(T_MIND_3, T_MIND_3.replace("construct: mindsets", "construct: mindset"))],
        "construct: mindset", 0,
        ["unknown construct 'mindset'", "expected one of mindsets, leadership"]),
    "unknown_finding": (
        "teacher.yaml",
        [(T_MIND_3, T_MIND_3.replace("finding: family_knowledge", "finding: family_voice"))],
        "finding: family_voice", 0,
        ["unknown finding 'family_voice' for construct 'mindsets'",
         "expected one of one_team, family_knowledge, barriers_not_excuses"]),
    "bad_reverse_type": (
        "teacher.yaml", [(T_MIND_3, T_MIND_3.replace("reverse: false", 'reverse: "no"'))],
        'reverse: "no"', 0, ["field 'reverse' got 'no' (text)", "expected true or false"]),
    "non_consecutive_codes": (
        "scales.yaml", [("codes: [1, 2, 3, 4]\n", "codes: [1, 2, 4, 5]\n")],
        "codes: [1, 2, 4, 5]", 0,
        ["scale 'agree4'", "not consecutive from 1", "expected [1, 2, 3, 4]"]),
    "label_count": (
        "scales.yaml", [("[Nunca, Rara vez, A veces, Con frecuencia, Siempre]",
                         "[Nunca, Rara vez, A veces, Siempre]")],
        "es: [Nunca, Rara vez, A veces, Siempre]", 0,
        ["scale 'freq5'", "4 Spanish ('es') labels for 5 codes", "expected one label per code"]),
    "missing_required_field": (
        "teacher.yaml", [(T_MIND_3, T_MIND_3.replace("    finding: family_knowledge\n", ""))],
        "- id: t_mind_3", 0,
        ["item t_mind_3", "no finding", "expected finding: one of one_team, family_knowledge"]),
    "unknown_field_typo": (
        "teacher.yaml", [(T_MIND_3, T_MIND_3.replace("reverse: false", "revers: false"))],
        "revers: false", 0,
        ["unknown field 'revers' (did you mean 'reverse'?)", "expected one of: id, construct"]),
    "bad_translation_status": (
        "family.yaml", [("      es: {status: draft}\n", "      es: {status: checked}\n")],
        "es: {status: checked}", 0,
        ["item f_lead_6", "translation status 'checked'", "expected one of draft, reviewed, "
         "back-translated"]),
    "duplicate_yaml_key": (
        "constructs.yaml",
        [("  - id: relationships\n", "  - id: relationships\n    id: rapport\n")],
        "id: rapport", 0, ["duplicate key 'id'", "expected each key once"]),
    "form_without_items": (
        "bank.yaml", [("items: [teacher.yaml, family.yaml]", "items: [teacher.yaml]")],
        "- id: family", 0,
        ["form 'family' has no items file", "expected a file in files.items with 'form: family'"]),
    "missing_file": (
        "bank.yaml", [("background: background.yaml", "background: backgrounds.yaml")],
        "background: backgrounds.yaml", 0,
        ["file 'backgrounds.yaml' not found", "expected an existing YAML file"]),
}


def _break(tmp_path: Path, name: str) -> tuple[Path, str, int, list[str]]:
    file, edits, marker, offset, fragments = CASES[name]
    root = _copy(tmp_path)
    path = root / file
    if isinstance(edits, str):
        _drop_items(path, set(edits.split(":", 1)[1].split(",")))
    else:
        for old, new in edits:
            _edit(path, old, new)
    line = _line_of(path, marker, offset)
    return root, str(path), line, fragments


@pytest.mark.parametrize("name", sorted(CASES))
def test_check_bank_names_file_line_and_expectation(tmp_path, name):
    root, file, line, fragments = _break(tmp_path, name)
    problems = ins.check_bank(root)
    assert problems, "a broken bank must report problems"
    matching = [p for p in problems if all(f in p.message for f in fragments)]
    assert matching, "\n".join(map(str, problems))
    p = matching[0]
    assert (p.file, p.line) == (file, line), str(p)
    assert str(p).startswith(f"{file}:{line}: ")
    assert "expected" in p.message


@pytest.mark.parametrize("name", ["duplicate_id", "unknown_scale", "bad_yaml", "too_few_items"])
def test_load_bank_raises_bank_error_listing_problems(tmp_path, name):
    root, file, line, fragments = _break(tmp_path, name)
    with pytest.raises(BankError) as info:
        ins.load_bank(root)
    assert f"{file}:{line}: " in str(info.value)
    assert info.value.problems == ins.check_bank(root)


@pytest.mark.parametrize("name", ["unknown_finding", "label_count", "missing_translation"])
def test_cli_check_fails_with_one_line_per_problem(tmp_path, name):
    root, file, line, fragments = _break(tmp_path, name)
    res = CliRunner().invoke(main, ["items", "check", str(root)])
    assert res.exit_code == 1
    assert res.exception is None or isinstance(res.exception, SystemExit)
    lines = [ln for ln in res.output.splitlines() if ln.startswith(f"{file}:")]
    assert any(ln.startswith(f"{file}:{line}: ") and fragments[0] in ln for ln in lines), res.output
    assert "Traceback" not in res.output


def test_cli_check_accepts_the_manifest_path_and_reports_a_missing_folder(tmp_path):
    root = _copy(tmp_path)
    ok = CliRunner().invoke(main, ["items", "check", str(root / "bank.yaml")])
    assert ok.exit_code == 0, ok.output
    res = CliRunner().invoke(main, ["items", "check", str(tmp_path / "nowhere")])
    assert res.exit_code == 1
    assert f"{tmp_path / 'nowhere'}: file not found; expected a bank folder" in res.output


def test_other_commands_report_a_broken_bank_without_traceback(tmp_path):
    root, file, line, _ = _break(tmp_path, "unknown_scale")
    res = CliRunner().invoke(main, ["items", "syntax", "--bank", str(root)])
    assert res.exit_code == 1
    assert f"{file}:{line}: " in res.output


def test_several_problems_are_all_collected(tmp_path):
    root = _copy(tmp_path)
    _edit(root / "teacher.yaml", T_MIND_3, T_MIND_3.replace("agree4", "agree5")
          .replace("reverse: false", "reverse: 1"))
    _edit(root / "scales.yaml", "codes: [1, 2, 3, 4]\n", "codes: [0, 1, 2, 3]\n")
    msgs = [p.message for p in ins.check_bank(root)]
    assert any("unknown scale 'agree5'" in m for m in msgs)
    assert any("field 'reverse' got 1 (number); expected true or false" in m for m in msgs)
    assert any("scale 'agree4': codes [0, 1, 2, 3] are not consecutive" in m for m in msgs)


def test_yes_no_are_yaml_booleans_but_quoted_text_is_not(tmp_path):
    root = _copy(tmp_path)
    _edit(root / "teacher.yaml", T_MIND_3, T_MIND_3.replace("reverse: false", "reverse: 'false'"))
    (p,) = ins.check_bank(root)
    assert "field 'reverse' got 'false' (text); expected true or false" in p.message


def test_bank_problem_round_trips():
    p = BankProblem("a/teacher.yaml", 12, "unknown scale 'x'; expected one of agree4")
    assert BankProblem.from_dict(p.to_dict()) == p
    assert str(p) == "a/teacher.yaml:12: unknown scale 'x'; expected one of agree4"


def test_empty_manifest_is_reported(tmp_path):
    root = _copy(tmp_path)
    (root / "bank.yaml").write_text("# nothing here\n", encoding="utf-8")
    (p,) = ins.check_bank(root)
    assert str(p).startswith(f"{root / 'bank.yaml'}:1: file is empty; expected a mapping")


def test_empty_item_file_is_reported(tmp_path):
    root = _copy(tmp_path)
    (root / "family.yaml").write_text("", encoding="utf-8")
    msgs = [str(p) for p in ins.check_bank(root)]
    assert f"{root / 'family.yaml'}:1: file is empty; expected a mapping" in "\n".join(msgs)
