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
from instrument.rules import MIN_ITEMS_PER_CONSTRUCT


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

# name: (file, [(old, new)], marker in the broken file, line offset from marker, the exact
# message; {root}, {first} and {previous} are filled in by _break)
CASES = {
    "bad_yaml": (
        "scales.yaml", [("kind: agreement\n", "kind: agreement: strong\n")],
        "kind: agreement: strong", 0,
        "invalid YAML (mapping values are not allowed here); expected well-formed YAML (check "
        "indentation, colons and quotes)"),
    "duplicate_id": (
        "teacher.yaml", [("  - id: t_mind_3\n", "  - id: t_mind_2\n")],
        "- id: t_mind_2", None,
        "duplicate item id 't_mind_2' (first defined at {root}/teacher.yaml:{first}); expected "
        "every item id to be unique across the bank"),
    "unknown_scale": (
        "teacher.yaml", [(T_MIND_3, T_MIND_3.replace("agree4", "agree5"))],
        "scale: agree5", 0,
        "items[2].scale: unknown scale 'agree5'; expected one of agree4, freq5, times5"),
    "missing_translation": (
        "family.yaml",
        [("      es: Cuando comparto ideas sobre mi hijo(a), la escuela las toma en cuenta.\n",
          "")],
        "en: When I share ideas about my child, the school takes them into account.", -1,
        "items[2].text: missing Spanish ('es') text; expected text in every language declared "
        "in bank.yaml (en, es)"),
    "too_few_items": (
        "family.yaml", "drop:f_rel_1,f_rel_2,f_rel_3,f_rel_4", "form: family", 0,
        "construct 'relationships' has 2 items on the family form; expected at least "
        f"{MIN_ITEMS_PER_CONSTRUCT.threshold:g} ({MIN_ITEMS_PER_CONSTRUCT.source})"),
    "unknown_form": (
        "family.yaml", [("\nform: family\n", "\nform: parents\n")], "form: parents", 0,
        "form: unknown form 'parents'; expected one of teacher, family (declared in bank.yaml "
        "forms)"),
    "item_file_on_no_form": (
        "family.yaml", [("\nform: family\n", "\n")], "items:", 0,
        "form: required key missing; expected the form these items belong to"),
    "unknown_construct": (
        "teacher.yaml", [(T_MIND_3, T_MIND_3.replace("construct: mindsets", "construct: mindset"))],
        "construct: mindset", 0,
        "items[2].construct: unknown construct 'mindset'; expected one of mindsets, leadership, "
        "communication, relationships, language_culture"),
    "unknown_finding": (
        "teacher.yaml",
        [(T_MIND_3, T_MIND_3.replace("finding: family_knowledge", "finding: family_voice"))],
        "finding: family_voice", 0,
        "items[2].finding: unknown finding 'family_voice' for construct 'mindsets'; expected one "
        "of one_team, family_knowledge, barriers_not_excuses"),
    "bad_reverse_type": (
        "teacher.yaml", [(T_MIND_3, T_MIND_3.replace("reverse: false", 'reverse: "no"'))],
        'reverse: "no"', 0, "items[2].reverse: expected true or false; got 'no'"),
    "non_consecutive_codes": (
        "scales.yaml", [("codes: [1, 2, 3, 4]\n", "codes: [1, 2, 4, 5]\n")],
        "codes: [1, 2, 4, 5]", 0,
        "scales[0].codes: codes [1, 2, 4, 5] are not consecutive from 1; expected [1, 2, 3, 4]"),
    "label_count": (
        "scales.yaml", [("[Nunca, Rara vez, A veces, Con frecuencia, Siempre]",
                         "[Nunca, Rara vez, A veces, Siempre]")],
        "es: [Nunca, Rara vez, A veces, Siempre]", 0,
        "scales[1].labels.es: 4 Spanish ('es') labels for 5 codes; expected one label per code "
        "(5 labels)"),
    "missing_required_field": (
        "teacher.yaml", [(T_MIND_3, T_MIND_3.replace("    finding: family_knowledge\n", ""))],
        "- id: t_mind_3", 0,
        "items[2].finding: no finding; expected finding: one of one_team, family_knowledge, "
        "barriers_not_excuses"),
    "unknown_field_typo": (
        "teacher.yaml", [(T_MIND_3, T_MIND_3.replace("reverse: false", "revers: false"))],
        "revers: false", 0,
        "items[2].revers: unknown key (did you mean 'reverse'?); expected one of ['id', "
        "'construct', 'finding', 'scale', 'reverse', 'text', 'translation', 'revisions', "
        "'cognitive_interviews']"),
    "bad_translation_status": (
        "family.yaml", [("      es: {status: draft}\n", "      es: {status: checked}\n")],
        "es: {status: checked}", 0,
        "items[11].translation.es.status: expected one of 'draft', 'reviewed' or "
        "'back-translated'; got 'checked'"),
    "duplicate_yaml_key": (
        "constructs.yaml",
        [("  - id: relationships\n", "  - id: relationships\n    id: rapport\n")],
        "id: rapport", 0, "duplicate key 'id' (first at line {previous}); expected each key once "
                          "in a mapping"),
    "form_without_items": (
        "bank.yaml", [("items: [teacher.yaml, family.yaml]", "items: [teacher.yaml]")],
        "- id: family", 0,
        "form 'family' has no items file; expected a file in files.items with 'form: family'"),
    "missing_file": (
        "bank.yaml", [("background: background.yaml", "background: backgrounds.yaml")],
        "background: backgrounds.yaml", 0,
        "file 'backgrounds.yaml' not found in {root}; expected an existing YAML file of the "
        "bank"),
}


def _break(tmp_path: Path, name: str) -> tuple[Path, str, int, str]:
    file, edits, marker, offset, message = CASES[name]
    root = _copy(tmp_path)
    path = root / file
    if isinstance(edits, str):
        _drop_items(path, set(edits.split(":", 1)[1].split(",")))
    else:
        for old, new in edits:
            _edit(path, old, new)
    line = _line_of(path, marker, offset)
    # {first}: the first line ending with the marker (where a repeated id was first defined);
    # {previous}: the line above the problem's line
    first = min(i + 1 for i, text in enumerate(path.read_text(encoding="utf-8").splitlines())
                if text.rstrip().endswith(marker))
    for name, value in (("root", root), ("first", first), ("previous", line - 1)):
        message = message.replace(f"{{{name}}}", str(value))
    return root, str(path), line, message


@pytest.mark.parametrize("name", sorted(CASES))
def test_check_bank_names_file_line_and_expectation(tmp_path, name):
    root, file, line, message = _break(tmp_path, name)
    problems = ins.check_bank(root)
    assert problems, "a broken bank must report problems"
    matching = [p for p in problems if p.message == message]
    assert matching, "\n".join(map(str, problems))
    p = matching[0]
    assert (p.file, p.line) == (file, line), str(p)
    assert str(p) == f"{file}:{line}: {message}"


@pytest.mark.parametrize("name", ["duplicate_id", "unknown_scale", "bad_yaml", "too_few_items"])
def test_load_bank_raises_bank_error_listing_problems(tmp_path, name):
    root, file, line, message = _break(tmp_path, name)
    with pytest.raises(BankError) as info:
        ins.load_bank(root)
    assert f"{file}:{line}: {message}" in str(info.value)
    assert info.value.problems == ins.check_bank(root)


@pytest.mark.parametrize("name", ["unknown_finding", "label_count", "missing_translation"])
def test_cli_check_fails_with_one_line_per_problem(tmp_path, name):
    root, file, line, message = _break(tmp_path, name)
    res = CliRunner().invoke(main, ["items", "check", str(root)])
    assert res.exit_code == 1
    assert res.exception is None or isinstance(res.exception, SystemExit)
    lines = [ln for ln in res.output.splitlines() if ln.startswith(f"{file}:")]
    assert f"{file}:{line}: {message}" in lines, res.output
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
    teacher, scales = root / "teacher.yaml", root / "scales.yaml"
    # a scale with wrong codes is still declared: its items are not reported as unknown scale
    assert [str(p) for p in ins.check_bank(root)] == [
        f"{scales}:{_line_of(scales, 'codes: [0, 1, 2, 3]')}: scales[0].codes: codes [0, 1, 2, 3] "
        "are not consecutive from 1; expected [1, 2, 3, 4]",
        f"{teacher}:{_line_of(teacher, 'scale: agree5')}: items[2].scale: unknown scale 'agree5'; "
        "expected one of agree4, freq5, times5",
        f"{teacher}:{_line_of(teacher, 'reverse: 1')}: items[2].reverse: expected true or false; "
        "got 1"]


def test_quoted_false_is_text_not_a_boolean(tmp_path):
    root = _copy(tmp_path)
    _edit(root / "teacher.yaml", T_MIND_3, T_MIND_3.replace("reverse: false", "reverse: 'false'"))
    (p,) = ins.check_bank(root)
    assert p.message == "items[2].reverse: expected true or false; got 'false'"


def test_bank_yaml_is_read_as_yaml_1_2_so_no_and_yes_stay_text(tmp_path):
    """Under YAML 1.1 ``reverse: no`` would pass as false and a label ``No`` would become False."""
    root = _copy(tmp_path)
    teacher, scales = root / "teacher.yaml", root / "scales.yaml"
    _edit(teacher, T_MIND_3, T_MIND_3.replace("reverse: false", "reverse: no"))
    _edit(scales, "en: [Never, Rarely, Sometimes, Often, Always]",
          "en: [No, Rarely, Sometimes, Often, Yes]")
    assert [str(p) for p in ins.check_bank(root)] == [
        f"{teacher}:{_line_of(teacher, 'reverse: no')}: items[2].reverse: expected true or "
        "false; got 'no'"]
    _edit(teacher, "reverse: no\n", "reverse: false\n")
    assert ins.load_bank(root).scales["freq5"].labels_en == (
        "No", "Rarely", "Sometimes", "Often", "Yes")


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


def test_short_form_export_copies_no_and_yes_as_text(tmp_path):
    """The exported bank is read as YAML 1.2 too: a label ``Yes`` and a note ``No`` stay text."""
    from instrument.bank.export import add_form
    from instrument.bank.yamlio import plain, read_yaml

    root = _copy(tmp_path)
    _edit(root / "bank.yaml", "en: Teacher and staff survey\n", "en: Yes\n")
    _edit(root / "teacher.yaml", 'notes: "Back-translation matched; no changes."}',
          "notes: No}")
    out = add_form(["t_mind_1", "t_mind_2"], base_form="teacher", form_id="ts",
                   out_dir=tmp_path / "short", source=root)
    manifest, _ = read_yaml(out / "bank.yaml", "bank.yaml")
    assert [f["label"]["en"] for f in plain(manifest)["forms"]] == [
        "Yes", "Family survey", "Yes (short form)"]
    items, _ = read_yaml(out / "ts.yaml", "ts.yaml")
    assert [(it["id"], it["translation"]["es"].get("notes")) for it in plain(items)["items"]] == [
        ("ts_mind_1", "No"), ("ts_mind_2", None)]
