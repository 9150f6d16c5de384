"""Load and check the item bank: `load_bank`, `check_bank`, `BankError`.

Every file is read with a safe YAML loader that keeps line numbers (`instrument.bank.yamlio`)
and validated against its pydantic model (`instrument.bank.schema`, which also checks the
references to what earlier files declare); then what spans files is checked (item ids unique
across the bank, items per construct on every form). All problems are collected, each as
``file:line: key.path: what was expected``;
`check_bank` returns them, `load_bank` raises `BankError` listing them. Neither ever lets a
YAML or Python error escape as a traceback for bad input.
"""
from __future__ import annotations

import importlib.resources
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel, ValidationError

from instrument.bank import schema as S
from instrument.bank.model import Bank, Scale, empty_frame, overall_record
from instrument.bank.schema import MANIFEST_NAME
from instrument.bank.yamlio import BankProblem, plain, read_yaml, schema_problems
from instrument.rules import MIN_ITEMS_PER_CONSTRUCT


class BankError(ValueError):
    """A bank that failed its checks; ``problems`` lists every `BankProblem`."""

    def __init__(self, problems: list[BankProblem]) -> None:
        self.problems = list(problems)
        n = len(self.problems)
        head = f"The item bank has {n} problem{'s' if n != 1 else ''}:"
        super().__init__("\n".join([head, *(f"  {p}" for p in self.problems)]))


def shipped_bank_path() -> Path:
    """Folder of the item bank shipped inside the installed package (``instrument/items``)."""
    return Path(str(importlib.resources.files("instrument") / "items"))


def _resolve(path: str | Path | None) -> tuple[Path, Path]:
    """(folder, manifest path) for a bank folder, a manifest file or None (shipped bank)."""
    p = shipped_bank_path() if path is None else Path(path)
    if p.is_dir():
        return p, p / MANIFEST_NAME
    return p.parent, p


class _Checker:
    """Reads the bank's files in order, validates each against its model with one shared
    `instrument.bank.schema.BankContext`, then checks what spans files."""

    def __init__(self, folder: Path, manifest: Path) -> None:
        self.folder = folder
        self.manifest_path = manifest
        self.problems: list[BankProblem] = []
        self.ctx = S.BankContext()
        self.manifest: S.BankManifest | None = None
        self.scales: S.ScalesFile | None = None
        self.constructs: S.ConstructsFile | None = None
        # (file, its tree, the model or None when the file has problems)
        self.item_files: list[tuple[str, Any, S.ItemsFile | None]] = []
        self.background: tuple[str, Any, S.BackgroundFile | None] | None = None
        self.form_files: dict[str, list[tuple[str, int]]] = {}    # form -> (file, line of form:)
        self.formless: list[str] = []                             # items files of no known form

    def read(self, name: Any, ref_file: str, ref_line: int | None) -> tuple[Any, str]:
        """The tree of the bank file ``name`` (None when it cannot be read: a problem says why)."""
        if not isinstance(name, str) or not name.strip():
            return None, ""         # the manifest's own problem
        p = self.folder / name
        shown = str(p)
        if not p.is_file():
            self.problems.append(BankProblem(ref_file, ref_line, f"file '{name}' not found in "
                                             f"{self.folder}; expected an existing YAML file of "
                                             "the bank"))
            return None, shown
        return self.tree(p, shown), shown

    def tree(self, path: Path, shown: str) -> Any:
        data, probs = read_yaml(path, shown)
        self.problems += probs
        if data is None and not probs:
            self.problems.append(BankProblem(shown, 1, "file is empty; expected a mapping of "
                                             f"key: value (see the comments at the top of "
                                             f"{MANIFEST_NAME} for the bank's layout)"))
        return data

    def validate(self, model: type[BaseModel], tree: Any, file: str) -> Any:
        """``tree`` validated against ``model`` (None and its problems recorded when it fails)."""
        if tree is None:
            return None
        try:
            return model.model_validate(plain(tree), context=self.ctx)
        except ValidationError as exc:
            self.problems += schema_problems(exc, tree, file, model)
            return None

    def run(self) -> None:
        mf = str(self.manifest_path)
        if not self.manifest_path.is_file():
            self.problems.append(BankProblem(mf, None, "file not found; expected a bank folder "
                                             f"holding {MANIFEST_NAME} (or the path of a "
                                             "bank.yaml)"))
            return
        tree = self.tree(self.manifest_path, mf)
        self.manifest = self.validate(S.BankManifest, tree, mf)
        files = tree.get("files") if isinstance(tree, dict) else None
        if not isinstance(files, dict):
            return
        self.scales = self.validate(S.ScalesFile, *self.read(files.get("scales"), mf,
                                                             files.line_of("scales")))
        self.constructs = self.validate(S.ConstructsFile, *self.read(
            files.get("constructs"), mf, files.line_of("constructs")))
        names = files.get("items")
        for i, name in enumerate(names if isinstance(names, list) else []):
            if name in names[:i]:
                continue            # listed twice: the manifest's problem
            t, f = self.read(name, mf, names.line_of(i))
            self.ctx.form = None
            self.item_files.append((f, t, self.validate(S.ItemsFile, t, f)))
            if self.ctx.form is not None:
                self.form_files.setdefault(self.ctx.form, []).append((f, t.line_of("form")))
            elif t is not None:
                self.formless.append(f)
        if "background" in files:
            t, f = self.read(files.get("background"), mf, files.line_of("background"))
            self.background = (f, t, self.validate(S.BackgroundFile, t, f))
        self.unique_ids()
        self.counts(mf, tree)
        self.overall_constructs(mf, tree)

    def unique_ids(self) -> None:
        """Item ids (scale and background items) are unique across the bank's files."""
        first: dict[str, tuple[str, int]] = {}
        files = [(f, t, "item") for f, t, _ in self.item_files]
        if self.background is not None:
            files.append((self.background[0], self.background[1], "background item"))
        for f, t, what in files:
            items = t.get("items") if isinstance(t, dict) else None
            for it in items if isinstance(items, list) else []:
                iid = it.get("id") if isinstance(it, dict) else None
                if not isinstance(iid, str):
                    continue
                line = it.line_of("id")
                if iid in first:
                    f0, l0 = first[iid]
                    self.problems.append(BankProblem(
                        f, line, f"duplicate {what} id '{iid}' (first defined at {f0}:{l0}); "
                                 "expected every item id to be unique across the bank"))
                else:
                    first[iid] = (f, line)

    def counts(self, mf: str, tree: Any) -> None:
        """Every declared form has items, and every construct enough items on every form."""
        if self.manifest is None:
            return
        rule = MIN_ITEMS_PER_CONSTRUCT
        lines = {fm.id: tree["forms"].line_of(i) for i, fm in enumerate(self.manifest.forms)}
        for form in self.ctx.forms:
            files = self.form_files.get(form)
            if not files and self.formless:
                continue            # an items file names no known form: said there
            if not files:
                self.problems.append(BankProblem(mf, lines[form], f"form '{form}' has no items "
                                                 "file; expected a file in files.items with "
                                                 f"'form: {form}'"))
                continue
            models = [m for f, _, m in self.item_files if m is not None and m.form == form]
            if len(models) < len(files):
                continue            # a file of this form has problems: they are said there
            f, line = files[0]
            for cid in self.ctx.constructs:
                n = sum(1 for m in models for it in m.items if it.construct_id == cid)
                if not rule.passes(n):
                    self.problems.append(BankProblem(
                        f, line, f"construct '{cid}' has {n} item{'s' if n != 1 else ''} on "
                                 f"the {form} form; expected at least {rule.threshold:g} "
                                 f"({rule.source})"))

    def overall_constructs(self, mf: str, tree: Any) -> None:
        """The constructs of the manifest's ``overall:`` are declared in the constructs file
        (checked on the manifest's tree, so it is said even when another key of the manifest
        has a problem)."""
        ov = tree.get("overall") if isinstance(tree, dict) else None
        cons = ov.get("constructs") if isinstance(ov, dict) else None
        if self.constructs is None or not isinstance(cons, list):
            return
        for i, cid in enumerate(cons):
            if isinstance(cid, str) and cid not in self.ctx.constructs:
                self.problems.append(BankProblem(
                    mf, cons.line_of(i), f"overall.constructs[{i}]: unknown construct '{cid}'; "
                    f"expected one of {', '.join(self.ctx.constructs)} (declared in "
                    f"{tree['files']['constructs']})"))

    # ------------------------------------------------------------ build
    def build(self) -> Bank:
        """The `Bank` of a bank without problems (every file validated)."""
        m, langs = self.manifest, self.ctx.languages
        target = "es" if "es" in langs else (langs[1] if len(langs) > 1 else None)
        cons = pd.DataFrame([{"construct": c.id, **{f"label_{lg}": c.label[lg] for lg in langs},
                              "description": _one_line(c.description)}
                             for c in self.constructs.constructs])
        finds = pd.DataFrame([{"construct": c.id, "finding": fd.key, "text": _one_line(fd.text)}
                              for c in self.constructs.constructs for fd in c.findings or []],
                             columns=["construct", "finding", "text"])
        rows, revs, cis = [], [], []
        rev_cols = ["item_id", "version", "date", "change", "reason"]
        ci_cols = ["item_id", "round", "date", "language", "participants", "note", "action"]
        for f, t, model in self.item_files:
            for tree_item, it in zip(t["items"], model.items):
                tr = it.translation or {}
                row = {"item_id": it.id, "construct": it.construct_id, "form": model.form,
                       "scale": it.scale, "reverse": it.reverse,
                       **{f"text_{lg}": _one_line(it.text[lg]) for lg in langs},
                       "finding": it.finding,
                       "translation_status": tr[target].status if target in tr else "",
                       "translation_notes": _one_line(tr[target].notes or "") if target in tr
                       else ""}
                for lg in langs[1:]:
                    if lg != target:
                        row[f"translation_status_{lg}"] = tr[lg].status
                row.update(file=f, line=tree_item.line)
                rows.append(row)
                revs += [{"item_id": it.id, **_texts(r.model_dump(), rev_cols[1:])}
                         for r in it.revisions or []]
                cis += [{"item_id": it.id, **_texts(r.model_dump(), ci_cols[1:])}
                        for r in it.cognitive_interviews or []]
        items = pd.DataFrame(rows)
        items["reverse"] = items["reverse"].astype(bool)
        bg_cols = ["item_id", "form", "type", "scale", *[f"text_{lg}" for lg in langs], "codes",
                   *[f"labels_{lg}" for lg in langs], "min", "max", "missing_codes"]
        bg_items = self.background[2].items if self.background is not None else []
        bg = pd.DataFrame([{"item_id": b.id, "form": b.form, "type": b.type, "scale": None,
                            **{f"text_{lg}": _one_line(b.text[lg]) for lg in langs},
                            "codes": tuple(o.code for o in b.options or []),
                            **{f"labels_{lg}": tuple(o.__pydantic_extra__[lg]
                                                     for o in b.options or []) for lg in langs},
                            "min": b.min, "max": b.max, "missing_codes": tuple(b.missing or ())}
                           for b in bg_items], columns=bg_cols)
        for col in ("min", "max"):
            bg[col] = bg[col].astype("Int64")
        missing = {mc.code: {lg: _one_line(mc.label[lg]) for lg in langs}
                   for mc in self.scales.missing_codes}
        scales = {}
        for s in self.scales.scales:
            mcodes = tuple(s.missing or ())
            mlabels = {lg: tuple(missing[c][lg] for c in mcodes) for lg in langs}
            labels = {lg: tuple(_one_line(x) for x in s.labels[lg]) for lg in langs}
            scales[s.id] = Scale(
                id=s.id, codes=tuple(s.codes), labels_en=labels.get("en", ()),
                labels_es=labels.get("es", ()), missing_codes=mcodes,
                missing_labels=mlabels.get("en", ()), kind=s.kind,
                missing_labels_es=mlabels.get("es", ()), labels_by_lang=labels,
                missing_labels_by_lang=mlabels)
        finfo = pd.DataFrame([{"form": fm.id, "id_prefix": fm.id_prefix or "",
                               **{f"label_{lg}": _one_line(fm.label[lg]) for lg in langs},
                               **{f"instructions_{lg}": _one_line((fm.instructions or {})
                                                                  .get(lg, "")) for lg in langs}}
                              for fm in m.forms])
        return Bank(constructs=cons, scales=scales, items=items, background=bg,
                    forms=tuple(fm.id for fm in m.forms), findings=finds, form_info=finfo,
                    revisions=(pd.DataFrame(revs, columns=rev_cols) if revs
                               else empty_frame(rev_cols)),
                    cognitive_interviews=(pd.DataFrame(cis, columns=ci_cols) if cis
                                          else empty_frame(ci_cols)),
                    overall=(None if m.overall is None else
                             overall_record(m.overall.label, m.overall.constructs,
                                            m.overall.forms or [fm.id for fm in m.forms])),
                    languages=tuple(langs), missing_codes=missing, name=m.name,
                    version=m.version or "", path=str(self.folder))


def _one_line(text: str) -> str:
    """Text with its runs of white space (YAML folding) as single spaces."""
    return " ".join(text.split())


def _texts(record: dict, keys: list[str]) -> dict:
    return {k: _one_line(v) if isinstance(v, str) and k not in ("date", "language") else v
            for k, v in ((k, record.get(k)) for k in keys)}


def check_bank(path: str | Path | None = None) -> list[BankProblem]:
    """Check an item bank and return every problem found (an empty list when it is sound).

    Parameters
    ----------
    path : path, optional
        A bank folder (holding ``bank.yaml``) or the path of its ``bank.yaml``; the bank
        shipped with the package when omitted.

    Returns
    -------
    list of BankProblem
        Each names the file, the 1-based line and what was expected, in reading order.

    Notes
    -----
    Checked: YAML syntax and duplicate keys; unknown (misspelt) and missing fields; field
    types (e.g. ``reverse`` must be true/false); unique ids; references to scales,
    constructs, findings, forms and languages; text and translation records for every
    declared language; scales with codes 1..k and one label per code in every language;
    every declared form has items; every construct has at least
    ``rules.MIN_ITEMS_PER_CONSTRUCT`` items on every form.
    """
    folder, manifest = _resolve(path)
    checker = _Checker(folder, manifest)
    checker.run()
    return _in_file_order(checker.problems)


def _in_file_order(problems: list[BankProblem]) -> list[BankProblem]:
    """Problems grouped by file (in the order files were read), by line within a file."""
    order = {f: i for i, f in enumerate(dict.fromkeys(p.file for p in problems))}
    return sorted(problems, key=lambda p: (order[p.file], p.line or 0))


def load_bank(path: str | Path | None = None) -> Bank:
    """Load the item bank (the shipped one when ``path`` is None) after checking it.

    Parameters
    ----------
    path : path, optional
        A bank folder (holding ``bank.yaml``) or the path of its ``bank.yaml``.

    Returns
    -------
    Bank

    Raises
    ------
    BankError
        When `check_bank` finds any problem; the message lists them all as
        ``file:line: what was expected``.

    Examples
    --------
    >>> import instrument as ins
    >>> bank = ins.load_bank()
    >>> print(bank.model_syntax(form="family").splitlines()[0])
    mindsets =~ f_mind_1 + f_mind_2 + f_mind_3 + f_mind_4 + f_mind_5 + f_mind_6
    """
    folder, manifest = _resolve(path)
    checker = _Checker(folder, manifest)
    checker.run()
    if checker.problems:
        raise BankError(_in_file_order(checker.problems))
    return checker.build()
