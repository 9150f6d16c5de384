"""Writing a copy of an item bank with a new form made of items of an existing form (a short form).

The copy is a complete bank folder that `instrument.load_bank` loads and checks like any other:
every file of the source bank is copied unchanged, the manifest lists one more form, and the new
form's items file holds copies of the chosen items under new ids (the new form's id prefix
followed by the rest of the source id), with a header comment mapping each new id to its source.
"""
from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Sequence

import yaml

from instrument.bank.loader import BankError, _resolve
from instrument.bank.schema import MANIFEST_NAME
from instrument.bank.yamlio import plain, read_yaml


def _read(path: Path) -> dict:
    """A file of the bank as plain data, read as YAML 1.2 like `instrument.load_bank` reads it
    (so a text ``No`` or ``Yes`` is copied as text, not turned into a boolean)."""
    tree, problems = read_yaml(path, str(path))
    if problems:
        raise BankError(problems)
    return plain(tree)


def add_form(selected: Sequence[str], *, base_form: str, form_id: str, out_dir: str | Path,
             source: str | Path | None = None, label_suffix: str = "short form",
             note: str = "") -> Path:
    """Copy the bank at ``source`` (the shipped bank when None) to ``out_dir`` with a new form.

    Parameters
    ----------
    selected : list of str
        Item ids of ``base_form`` that make up the new form (in the source file's order).
    base_form : str
    form_id : str
        Id of the new form; its id prefix is ``<form_id>_``.
    out_dir : path
        A folder that does not exist yet or is empty.
    label_suffix : str
        Added in parentheses to the base form's label in every language.
    note : str
        A line for the header comment of the new items file (how the items were chosen).

    Returns
    -------
    Path
        The new bank folder (load it with ``instrument.load_bank(path)``).
    """
    folder, manifest_path = _resolve(source)
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise ValueError(f"{out}: expected a new or empty folder for the exported bank.")
    manifest = _read(manifest_path)
    forms = manifest["forms"]
    base = next((f for f in forms if f.get("id") == base_form), None)
    if base is None:
        raise ValueError(f"base_form= {base_form!r} is not a form of {manifest_path}; expected "
                         f"one of {[f.get('id') for f in forms]}.")
    if any(f.get("id") == form_id for f in forms):
        raise ValueError(f"form_id= {form_id!r} is already a form of {manifest_path}.")
    base_prefix = str(base.get("id_prefix", ""))
    prefix = f"{form_id}_"
    items_doc = None
    for name in manifest["files"]["items"]:
        doc = _read(folder / name)
        if doc.get("form") == base_form:
            items_doc = doc
            break
    if items_doc is None:
        raise ValueError(f"no items file of form {base_form!r} in {manifest_path}.")
    known = [it["id"] for it in items_doc["items"]]
    missing = [s for s in selected if s not in known]
    if missing:
        raise ValueError(f"selected items {missing} are not items of form {base_form!r}.")
    chosen = []
    mapping = []
    for it in items_doc["items"]:
        if it["id"] in selected:
            new = copy.deepcopy(it)
            new["id"] = prefix + it["id"][len(base_prefix):]
            mapping.append((new["id"], it["id"]))
            chosen.append(new)
    out.mkdir(parents=True, exist_ok=True)
    for p in sorted(folder.glob("*.yaml")):
        shutil.copyfile(p, out / p.name)
    entry = copy.deepcopy(base)
    entry["id"] = form_id
    entry["id_prefix"] = prefix
    entry["label"] = {lg: f"{txt} ({label_suffix})" for lg, txt in base["label"].items()}
    forms.append(entry)
    items_file = f"{form_id}.yaml"
    manifest["files"]["items"] = list(manifest["files"]["items"]) + [items_file]
    (out / MANIFEST_NAME).write_text(
        f"# {manifest_path.name} of the source bank with the form {form_id} added.\n"
        + yaml.safe_dump(manifest, sort_keys=False, allow_unicode=True, width=100),
        encoding="utf-8")
    header = [f"# Form {form_id}: items of the {base_form} form, copied with new ids."]
    if note:
        header.append(f"# {note}")
    header += [f"#   {new} <- {old}" for new, old in mapping]
    (out / items_file).write_text(
        "\n".join(header) + "\n" + yaml.safe_dump({"form": form_id, "items": chosen},
                                                  sort_keys=False, allow_unicode=True, width=100),
        encoding="utf-8")
    return out
