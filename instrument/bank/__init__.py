"""The item bank: YAML files under ``instrument/items`` checked against a schema on load.

Layout (shipped as package data; the repo-root ``items/`` is a symlink to it)::

    bank.yaml        manifest: name, version, languages (first = source), forms (id, id_prefix,
                     label, instructions) and the files below
    scales.yaml      missing_codes (code, label per language) and scales (id, kind, codes 1..k,
                     labels per language, missing codes offered)
    constructs.yaml  constructs (id, label per language, description, findings: key + text)
    teacher.yaml     form: teacher; items: id, construct, finding, scale, reverse, text,
    family.yaml      translation (status, notes), optional revisions and cognitive_interviews
    background.yaml  background items (id, form, type choice|integer, text, options | min/max)

API: ``load_bank(path=None) -> Bank`` (raises `BankError`), ``check_bank(path) ->
list[BankProblem]``; `Bank` offers ``items_for``, ``model_syntax``, ``recode_reverse``,
``n_categories``, ``scale_of``, ``blueprint``, ``summary``, ``show``, ``to_dict``/``from_dict``.
The schema (one pydantic model per file and record): `instrument.bank.schema`.
"""
from instrument.bank.loader import BankError, check_bank, load_bank, shipped_bank_path
from instrument.bank.model import Bank, Scale
from instrument.bank.yamlio import BankProblem

__all__ = ["Bank", "BankError", "BankProblem", "Scale", "check_bank", "load_bank",
           "shipped_bank_path"]
