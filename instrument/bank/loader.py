"""Load and check the item bank: `load_bank`, `check_bank`, `BankError`.

Every file is read with a safe YAML loader that keeps line numbers (`instrument.bank.yamlio`);
each mapping is checked against its schema (`instrument.bank.schema`), then cross-references
and counts are checked. All problems are collected, each as ``file:line: what was expected``;
`check_bank` returns them, `load_bank` raises `BankError` listing them. Neither ever lets a
YAML or Python error escape as a traceback for bad input.
"""
from __future__ import annotations

import difflib
import importlib.resources
from pathlib import Path
from typing import Any

import pandas as pd

from instrument.bank import schema as S
from instrument.bank.model import Bank, Scale, empty_frame
from instrument.bank.yamlio import BankProblem, LineDict, LineList, plain, read_yaml
from instrument.rules import MIN_ITEMS_PER_CONSTRUCT

MANIFEST_NAME = "bank.yaml"


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
    """Walks the bank's files, collecting problems and the parsed content."""

    def __init__(self, folder: Path, manifest: Path) -> None:
        self.folder = folder
        self.manifest_path = manifest
        self.problems: list[BankProblem] = []
        self.languages: list[str] = []
        self.forms: dict[str, dict] = {}
        self.missing: dict[int, dict] = {}
        self.scales: dict[str, dict] = {}
        self.constructs: dict[str, dict] = {}
        self.items: list[dict] = []
        self.background: list[dict] = []
        self.ids: dict[str, tuple[str, int]] = {}
        self.form_files: dict[str, list[tuple[str, int]]] = {}
        self.meta: dict[str, Any] = {}

    # ------------------------------------------------------------ helpers
    def add(self, file: str, line: int | None, message: str) -> None:
        self.problems.append(BankProblem(file, line, message))

    def show_name(self, p: Path) -> str:
        return str(p)

    def fields(self, d: Any, schema: S.Schema, what: str, file: str, line: int,
               extra: tuple[str, ...] = ()) -> bool:
        """Check ``d`` against ``schema``; returns False when ``d`` is not a mapping."""
        if not isinstance(d, dict):
            self.add(file, line, f"{what}: expected {S.EXPECT['map']}, {S.describe(d)}")
            return False
        known = [f.name for f in schema] + list(extra)
        for key in d:
            if key not in known:
                close = difflib.get_close_matches(str(key), known, n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                self.add(file, d.line_of(key), f"{what}: unknown field '{key}'{hint}; expected "
                                               f"one of: {', '.join(known)}")
        for f in schema:
            if f.name not in d:
                if f.required:
                    self.add(file, d.line, f"{what}: missing required field '{f.name}'; "
                                           f"expected {f.doc} ({S.EXPECT[f.kind]})")
                continue
            v = d[f.name]
            if not S.kind_ok(f.kind, v):
                self.add(file, d.line_of(f.name), f"{what}: field '{f.name}' {S.describe(v)}; "
                                                  f"expected {S.EXPECT[f.kind]}")
        return True

    def good(self, d: dict, key: str, kind: str) -> bool:
        return key in d and S.kind_ok(kind, d[key])

    def langtext(self, d: dict, key: str, what: str, file: str) -> dict[str, str]:
        """Check a language -> text mapping; report missing and unknown languages."""
        v = d.get(key)
        if not isinstance(v, dict):
            return {}
        out = {}
        for lang in v:
            if self.languages and lang not in self.languages:   # none: the manifest's error
                self.add(file, v.line_of(lang), f"{what}: unknown language '{lang}' in '{key}'; "
                                                f"expected one of {', '.join(self.languages)} "
                                                f"(declared in {MANIFEST_NAME} languages)")
            elif not S.kind_ok("text", v[lang]):
                self.add(file, v.line_of(lang), f"{what}: {S.language_name(lang)} '{key}' "
                                                f"{S.describe(v[lang])}; expected non-empty text")
            else:
                out[lang] = " ".join(v[lang].split())
        for lang in self.languages:
            if lang not in v:
                self.add(file, d.line_of(key),
                         f"{what}: missing {S.language_name(lang)} '{key}'; "
                                       f"expected text in every language declared in "
                                       f"{MANIFEST_NAME} ({', '.join(self.languages)})")
        return out

    def unique_id(self, iid: str, file: str, line: int, what: str) -> bool:
        if iid in self.ids:
            f0, l0 = self.ids[iid]
            self.add(file, line, f"duplicate {what} id '{iid}' (first defined at {f0}:{l0}); "
                                 "expected every item id to be unique across the bank")
            return False
        self.ids[iid] = (file, line)
        return True

    def missing_list(self, d: dict, what: str, file: str) -> list[int]:
        v = d.get("missing", [])
        if not isinstance(v, list):
            return []
        out = []
        for i, code in enumerate(v):
            line = v.line_of(i) if isinstance(v, LineList) else d.line
            if not S.kind_ok("int", code) or code not in self.missing:
                known = ", ".join(map(str, self.missing)) or "none declared"
                self.add(file, line, f"{what}: missing code {code!r} is not declared in "
                                     f"missing_codes; expected one of: {known}")
            elif code in out:
                self.add(file, line, f"{what}: missing code {code} listed twice; expected "
                                     "each code once")
            else:
                out.append(code)
        return out

    def read(self, name: Any, ref_file: str, ref_line: int) -> tuple[Any, str]:
        if not isinstance(name, str) or not name.strip():
            return None, ""
        p = self.folder / name
        shown = self.show_name(p)
        if not p.is_file():
            self.add(ref_file, ref_line, f"file '{name}' not found in {self.folder}; expected "
                                         "an existing YAML file of the bank")
            return None, shown
        data, probs = read_yaml(p, shown)
        self.problems += probs
        if data is None and not probs:
            self.add(shown, 1, f"file is empty; expected {S.EXPECT['map']} (see the comments "
                               f"at the top of {MANIFEST_NAME} for the bank's layout)")
        return data, shown

    # ------------------------------------------------------------ files
    def run(self) -> None:
        mf = self.show_name(self.manifest_path)
        if not self.manifest_path.is_file():
            self.add(mf, None, f"file not found; expected a bank folder holding {MANIFEST_NAME} "
                               "(or the path of a bank.yaml)")
            return
        data, probs = read_yaml(self.manifest_path, mf)
        self.problems += probs
        if data is None:
            if not probs:
                self.add(mf, 1, f"file is empty; expected {S.EXPECT['map']} with "
                                f"{', '.join(f.name for f in S.MANIFEST)}")
            return
        if not self.fields(data, S.MANIFEST, "bank manifest", mf, 1):
            return
        self.meta = {"name": data.get("name") if self.good(data, "name", "text") else "",
                     "version": str(data.get("version", ""))}
        self.manifest(data, mf)
        files = data.get("files")
        if not isinstance(files, dict):
            return
        self.fields(files, S.FILES, "files", mf, data.line_of("files"))
        scales_d, sf = self.read(files.get("scales"), mf, files.line_of("scales"))
        self.scales_file(scales_d, sf)
        cons_d, cf = self.read(files.get("constructs"), mf, files.line_of("constructs"))
        self.constructs_file(cons_d, cf)
        item_files = files.get("items")
        if isinstance(item_files, list):
            seen: set[str] = set()
            for i, name in enumerate(item_files):
                line = item_files.line_of(i)
                if not S.kind_ok("text", name):
                    self.add(mf, line, f"files.items: entry {S.describe(name)}; expected a "
                                       "file name")
                    continue
                if name in seen:
                    self.add(mf, line, f"files.items: '{name}' listed twice; expected each "
                                       "file once")
                    continue
                seen.add(name)
                d, f = self.read(name, mf, line)
                self.items_file(d, f)
        if "background" in files:
            d, f = self.read(files.get("background"), mf, files.line_of("background"))
            self.background_file(d, f)
        self.counts(mf)

    def manifest(self, data: LineDict, mf: str) -> None:
        langs = data.get("languages")
        if isinstance(langs, list):
            for i, lang in enumerate(langs):
                if not S.kind_ok("id", lang):
                    self.add(mf, langs.line_of(i), f"languages: entry {S.describe(lang)}; "
                                                   "expected a language code such as en or es")
                elif lang in self.languages:
                    self.add(mf, langs.line_of(i), f"languages: '{lang}' listed twice; "
                                                   "expected each language once")
                else:
                    self.languages.append(lang)
            if not self.languages:
                self.add(mf, data.line_of("languages"), "languages: empty; expected at least "
                                                        "one language code (e.g. [en, es])")
        forms = data.get("forms")
        if isinstance(forms, list):
            for i, fd in enumerate(forms):
                what = f"form #{i + 1}"
                if not self.fields(fd, S.FORM, what, mf, forms.line_of(i)):
                    continue
                fid = fd.get("id")
                if not S.kind_ok("id", fid):
                    continue
                what = f"form '{fid}'"
                if fid in self.forms:
                    self.add(mf, fd.line_of("id"), f"duplicate form id '{fid}'; expected each "
                                                   "form once")
                    continue
                self.forms[fid] = {
                    "id": fid, "line": fd.line,
                    "id_prefix": fd.get("id_prefix") if self.good(fd, "id_prefix", "text") else "",
                    "label": self.langtext(fd, "label", what, mf),
                    "instructions": (self.langtext(fd, "instructions", what, mf)
                                     if "instructions" in fd else {}),
                }
            if not forms:
                self.add(mf, data.line_of("forms"), "forms: empty; expected at least one form")

    def scales_file(self, data: Any, f: str) -> None:
        if data is None:
            return
        if not self.fields(data, S.SCALES_FILE, "scales file", f, 1):
            return
        mc = data.get("missing_codes", [])
        if isinstance(mc, list):
            for i, m in enumerate(mc):
                if not self.fields(m, S.MISSING_CODE, f"missing code #{i + 1}", f, mc.line_of(i)):
                    continue
                code = m.get("code")
                if not S.kind_ok("int", code):
                    continue
                what = f"missing code {code}"
                if code in self.missing:
                    self.add(f, m.line_of("code"), f"duplicate missing code {code}; expected "
                                                   "each code once")
                    continue
                self.missing[code] = {"label": self.langtext(m, "label", what, f)}
        scales = data.get("scales")
        if not isinstance(scales, list):
            return
        for i, sd in enumerate(scales):
            if not self.fields(sd, S.SCALE, f"scale #{i + 1}", f, scales.line_of(i)):
                continue
            sid = sd.get("id")
            if not S.kind_ok("id", sid):
                continue
            what = f"scale '{sid}'"
            if sid in self.scales:
                self.add(f, sd.line_of("id"), f"duplicate scale id '{sid}' (first at line "
                                              f"{self.scales[sid]['line']}); expected each "
                                              "scale once")
                continue
            entry = {"id": sid, "line": sd.line, "kind": sd.get("kind"), "ok": True,
                     "codes": [], "labels": {}, "missing": self.missing_list(sd, what, f)}
            self.scales[sid] = entry
            codes = sd.get("codes")
            if isinstance(codes, list):
                if not all(S.kind_ok("int", c) for c in codes):
                    self.add(f, sd.line_of("codes"), f"{what}: codes {plain(codes)}; expected "
                                                     "whole numbers 1, 2, ..., k")
                    entry["ok"] = False
                elif len(codes) < 2 or list(codes) != list(range(1, len(codes) + 1)):
                    self.add(f, sd.line_of("codes"),
                             f"{what}: codes {plain(codes)} are not consecutive from 1; expected "
                             f"{list(range(1, max(len(codes), 2) + 1))}")
                    entry["ok"] = False
                else:
                    entry["codes"] = list(codes)
                for code in entry["missing"]:
                    if code in codes:
                        self.add(f, sd.line_of("missing"), f"{what}: missing code {code} is also "
                                                           "a response code; expected missing "
                                                           "codes outside the scale's codes")
            labels = sd.get("labels")
            if isinstance(labels, dict):
                for lang in labels:
                    if self.languages and lang not in self.languages:
                        self.add(f, labels.line_of(lang), f"{what}: labels for unknown language "
                                                          f"'{lang}'; expected one of "
                                                          f"{', '.join(self.languages)}")
                for lang in self.languages:
                    labs = labels.get(lang)
                    if labs is None:
                        self.add(f, sd.line_of("labels"),
                                 f"{what}: no {S.language_name(lang)} labels; "
                                                 "expected one label per code in every language "
                                                 f"({', '.join(self.languages)})")
                        entry["ok"] = False
                    elif not isinstance(labs, list) or not all(S.kind_ok("text", x) for x in labs):
                        self.add(f, labels.line_of(lang), f"{what}: {S.language_name(lang)} "
                                                          f"labels {S.describe(labs)}; expected "
                                                          "a list of texts")
                        entry["ok"] = False
                    elif isinstance(codes, list) and len(labs) != len(codes):
                        self.add(f, labels.line_of(lang),
                                 f"{what}: {len(labs)} {S.language_name(lang)} labels for "
                                 f"{len(codes)} codes; expected one label per code "
                                 f"({len(codes)} labels)")
                        entry["ok"] = False
                    else:
                        entry["labels"][lang] = [" ".join(x.split()) for x in labs]

    def constructs_file(self, data: Any, f: str) -> None:
        if data is None:
            return
        if not self.fields(data, S.CONSTRUCTS_FILE, "constructs file", f, 1):
            return
        cons = data.get("constructs")
        if not isinstance(cons, list):
            return
        for i, cd in enumerate(cons):
            if not self.fields(cd, S.CONSTRUCT, f"construct #{i + 1}", f, cons.line_of(i)):
                continue
            cid = cd.get("id")
            if not S.kind_ok("id", cid):
                continue
            what = f"construct '{cid}'"
            if cid in self.constructs:
                self.add(f, cd.line_of("id"), f"duplicate construct id '{cid}' (first at line "
                                              f"{self.constructs[cid]['line']}); expected each "
                                              "construct once")
                continue
            entry = {"id": cid, "line": cd.line, "file": f,
                     "label": self.langtext(cd, "label", what, f),
                     "description": " ".join(str(cd.get("description", "")).split()),
                     "findings": {}}
            self.constructs[cid] = entry
            finds = cd.get("findings")
            if isinstance(finds, list):
                if not finds:
                    self.add(f, cd.line_of("findings"), f"{what}: no findings; expected at "
                                                        "least one finding (key, text)")
                for j, fd in enumerate(finds):
                    if not self.fields(fd, S.FINDING, f"{what}, finding #{j + 1}", f,
                                       finds.line_of(j)):
                        continue
                    key = fd.get("key")
                    if not S.kind_ok("id", key):
                        continue
                    if key in entry["findings"]:
                        self.add(f, fd.line_of("key"), f"{what}: duplicate finding key '{key}'; "
                                                       "expected each key once per construct")
                        continue
                    entry["findings"][key] = " ".join(str(fd.get("text", "")).split())

    def check_form_ref(self, form: Any, file: str, line: int, what: str) -> bool:
        if not S.kind_ok("id", form):
            return False
        if form not in self.forms:
            self.add(file, line, f"{what}: unknown form '{form}'; expected one of "
                                 f"{', '.join(self.forms) or '(no forms declared)'} "
                                 f"(declared in {MANIFEST_NAME} forms)")
            return False
        return True

    def check_id_prefix(self, iid: str, form: str, file: str, line: int, what: str) -> None:
        prefix = self.forms.get(form, {}).get("id_prefix", "")
        if prefix and not iid.startswith(prefix):
            self.add(file, line, f"{what} '{iid}' is on the {form} form; expected an id "
                                 f"starting with '{prefix}'")

    def items_file(self, data: Any, f: str) -> None:
        if data is None:
            return
        if not self.fields(data, S.ITEMS_FILE, "items file", f, 1):
            return
        form = data.get("form")
        form_ok = self.check_form_ref(form, f, data.line_of("form"), "items file")
        if form_ok:
            self.form_files.setdefault(form, []).append((f, data.line_of("form")))
        items = data.get("items")
        if not isinstance(items, list):
            return
        if not items:
            self.add(f, data.line_of("items"), "items: empty list; expected the form's items")
        for i, it in enumerate(items):
            iid = it.get("id") if isinstance(it, dict) else None
            what = f"item {iid}" if S.kind_ok("id", iid) else f"item #{i + 1}"
            if not self.fields(it, S.ITEM, what, f, items.line_of(i)):
                continue
            ok = S.kind_ok("id", iid) and self.unique_id(iid, f, it.line_of("id"), "item")
            if ok and form_ok:
                self.check_id_prefix(iid, form, f, it.line_of("id"), "item")
            cid, fkey, sid = it.get("construct"), it.get("finding"), it.get("scale")
            if S.kind_ok("id", cid) and cid not in self.constructs:
                if self.constructs:   # none declared: the construct file's own error says so
                    self.add(f, it.line_of("construct"), f"{what}: unknown construct '{cid}'; "
                                                         "expected one of "
                                                         f"{', '.join(self.constructs)}")
                ok = False
            elif S.kind_ok("id", cid) and fkey is None and self.constructs[cid]["findings"]:
                self.add(f, it.line, f"{what}: no finding; expected finding: one of "
                                     f"{', '.join(self.constructs[cid]['findings'])}")
                ok = False
            elif S.kind_ok("id", cid) and S.kind_ok("id", fkey):
                known = self.constructs[cid]["findings"]
                if fkey not in known:
                    self.add(f, it.line_of("finding"),
                             f"{what}: unknown finding '{fkey}' for construct '{cid}'; expected "
                             f"one of {', '.join(known) or '(none declared)'}")
                    ok = False
            if S.kind_ok("id", sid) and sid not in self.scales:
                self.add(f, it.line_of("scale"), f"{what}: unknown scale '{sid}'; expected one "
                                                 f"of {', '.join(self.scales)}")
                ok = False
            text = self.langtext(it, "text", what, f)
            tr = self.translation(it, what, f)
            self.history(it, what, f)
            ok = ok and all(self.good(it, k, kd) for k, kd in
                            (("construct", "id"), ("scale", "id"), ("reverse", "bool"))) \
                and (fkey is None or self.good(it, "finding", "id")) and form_ok
            self.items.append({"ok": ok, "item_id": iid, "construct": cid, "form": form,
                               "scale": sid, "reverse": it.get("reverse"), "text": text,
                               "finding": fkey, "translation": tr, "file": f, "line": it.line,
                               "revisions": plain(it.get("revisions", [])),
                               "cognitive_interviews": plain(it.get("cognitive_interviews", []))})

    def translation(self, it: dict, what: str, f: str) -> dict:
        tr = it.get("translation")
        out: dict[str, dict] = {}
        targets = self.languages[1:]
        if tr is None and targets:
            self.add(f, it.line, f"{what}: no translation record; expected translation: with "
                                 f"an entry per translated language ({', '.join(targets)})")
            return out
        if not isinstance(tr, dict):
            return out
        for lang in tr:
            if lang not in targets:
                self.add(f, tr.line_of(lang), f"{what}: translation entry for '{lang}'; expected "
                                              f"entries only for translated languages "
                                              f"({', '.join(targets) or 'none'})")
        for lang in targets:
            entry = tr.get(lang)
            if entry is None:
                self.add(f, it.line_of("translation"), f"{what}: no translation record for "
                                     f"{S.language_name(lang)}; expected {lang}: {{status: "
                                     f"{' | '.join(S.TRANSLATION_STATUSES)}}}")
                continue
            if not self.fields(entry, S.TRANSLATION, f"{what}, translation '{lang}'", f,
                               tr.line_of(lang)):
                continue
            status = entry.get("status")
            if S.kind_ok("text", status) and status not in S.TRANSLATION_STATUSES:
                self.add(f, entry.line_of("status"),
                         f"{what}: translation status '{status}'; expected one of "
                         f"{', '.join(S.TRANSLATION_STATUSES)}")
            out[lang] = {"status": status, "notes": " ".join(str(entry.get("notes", "")).split()),
                         "reviewer": entry.get("reviewer", "")}
        return out

    def history(self, it: dict, what: str, f: str) -> None:
        for key, schema in (("revisions", S.REVISION),
                            ("cognitive_interviews", S.COGNITIVE_INTERVIEW)):
            v = it.get(key)
            if not isinstance(v, list):
                continue
            for j, e in enumerate(v):
                if self.fields(e, schema, f"{what}, {key} #{j + 1}", f, v.line_of(j)):
                    lang = e.get("language")
                    if S.kind_ok("id", lang) and lang not in self.languages:
                        self.add(f, e.line_of("language"),
                                 f"{what}, {key} #{j + 1}: unknown language '{lang}'; expected "
                                 f"one of {', '.join(self.languages)}")

    def background_file(self, data: Any, f: str) -> None:
        if data is None:
            return
        if not self.fields(data, S.BACKGROUND_FILE, "background file", f, 1):
            return
        items = data.get("items")
        if not isinstance(items, list):
            return
        for i, it in enumerate(items):
            iid = it.get("id") if isinstance(it, dict) else None
            what = f"background item {iid}" if S.kind_ok("id", iid) else f"background item #{i+1}"
            if not self.fields(it, S.BACKGROUND_ITEM, what, f, items.line_of(i)):
                continue
            if S.kind_ok("id", iid):
                self.unique_id(iid, f, it.line_of("id"), "background item")
            form = it.get("form")
            if self.check_form_ref(form, f, it.line_of("form"), what) and S.kind_ok("id", iid):
                self.check_id_prefix(iid, form, f, it.line_of("id"), "background item")
            typ = it.get("type")
            if S.kind_ok("id", typ) and typ not in S.BACKGROUND_TYPES:
                self.add(f, it.line_of("type"), f"{what}: type '{typ}'; expected one of "
                                                f"{', '.join(S.BACKGROUND_TYPES)}")
            text = self.langtext(it, "text", what, f)
            codes: list[int] = []
            labels: dict[str, list[str]] = {lang: [] for lang in self.languages}
            opts = it.get("options")
            if typ == "choice" and opts is None:
                self.add(f, it.line, f"{what}: choice item without 'options'; expected a list "
                                     f"of options (code, {', '.join(self.languages)})")
            if typ == "integer" and opts is not None:
                self.add(f, it.line_of("options"), f"{what}: 'options' on an integer item; "
                                                   "expected min and max instead")
            if isinstance(opts, list):
                for j, o in enumerate(opts):
                    ow = f"{what}, option #{j + 1}"
                    if not self.fields(o, (S.Field("code", "int", doc="the code stored"),),
                                       ow, f, opts.line_of(j), extra=tuple(self.languages)):
                        continue
                    code = o.get("code")
                    if S.kind_ok("int", code):
                        if code in codes:
                            self.add(f, o.line_of("code"), f"{ow}: duplicate code {code}; "
                                                           "expected each code once")
                        codes.append(code)
                    for lang in self.languages:
                        if not S.kind_ok("text", o.get(lang)):
                            self.add(f, o.line, f"{ow}: no {S.language_name(lang)} label; "
                                                "expected a label in every language")
                        labels[lang].append(str(o.get(lang, "")))
            self.background.append({
                "item_id": iid, "form": form, "type": typ, "text": text, "codes": tuple(codes),
                "labels": {k: tuple(v) for k, v in labels.items()},
                "min": it.get("min"), "max": it.get("max"),
                "missing": tuple(self.missing_list(it, what, f))})

    def counts(self, mf: str) -> None:
        """Every declared form has items, and every construct enough items on every form."""
        rule = MIN_ITEMS_PER_CONSTRUCT
        for form, finfo in self.forms.items():
            files = self.form_files.get(form)
            if not files:
                self.add(mf, finfo["line"], f"form '{form}' has no items file; expected a file "
                                            f"in files.items with 'form: {form}'")
                continue
            f, line = files[0]
            for cid in self.constructs:
                n = sum(1 for it in self.items
                        if it["form"] == form and it["construct"] == cid)
                if not rule.passes(n):
                    self.add(f, line, f"construct '{cid}' has {n} item{'s' if n != 1 else ''} "
                                      f"on the {form} form; expected at least "
                                      f"{rule.threshold:g} ({rule.source})")

    # ------------------------------------------------------------ build
    def build(self) -> Bank:
        langs = self.languages
        target = "es" if "es" in langs else (langs[1] if len(langs) > 1 else None)
        cons = pd.DataFrame([{"construct": c["id"],
                              **{f"label_{lg}": c["label"].get(lg, "") for lg in langs},
                              "description": c["description"]} for c in self.constructs.values()])
        finds = pd.DataFrame([{"construct": c["id"], "finding": k, "text": t}
                              for c in self.constructs.values() for k, t in c["findings"].items()],
                             columns=["construct", "finding", "text"])
        rows = []
        for it in self.items:
            row = {"item_id": it["item_id"], "construct": it["construct"], "form": it["form"],
                   "scale": it["scale"], "reverse": bool(it["reverse"]),
                   **{f"text_{lg}": it["text"][lg] for lg in langs},
                   "finding": it["finding"],
                   "translation_status": it["translation"].get(target, {}).get("status", ""),
                   "translation_notes": it["translation"].get(target, {}).get("notes", "")}
            for lg in langs[1:]:
                if lg != target:
                    row[f"translation_status_{lg}"] = it["translation"][lg]["status"]
            row.update(file=it["file"], line=it["line"])
            rows.append(row)
        items = pd.DataFrame(rows)
        items["reverse"] = items["reverse"].astype(bool)
        bg_cols = ["item_id", "form", "type", "scale", *[f"text_{lg}" for lg in langs], "codes",
                   *[f"labels_{lg}" for lg in langs], "min", "max", "missing_codes"]
        bg = pd.DataFrame([{"item_id": b["item_id"], "form": b["form"], "type": b["type"],
                            "scale": None, **{f"text_{lg}": b["text"][lg] for lg in langs},
                            "codes": b["codes"],
                            **{f"labels_{lg}": b["labels"][lg] for lg in langs},
                            "min": b["min"], "max": b["max"], "missing_codes": b["missing"]}
                           for b in self.background], columns=bg_cols)
        for col in ("min", "max"):
            bg[col] = bg[col].astype("Int64")
        scales = {}
        for s in self.scales.values():
            mcodes = tuple(s["missing"])
            mlabels = {lg: tuple(self.missing[c]["label"][lg] for c in mcodes) for lg in langs}
            labels = {lg: tuple(s["labels"][lg]) for lg in langs}
            scales[s["id"]] = Scale(
                id=s["id"], codes=tuple(s["codes"]), labels_en=labels.get("en", ()),
                labels_es=labels.get("es", ()), missing_codes=mcodes,
                missing_labels=mlabels.get("en", ()), kind=s["kind"],
                missing_labels_es=mlabels.get("es", ()), labels_by_lang=labels,
                missing_labels_by_lang=mlabels)
        finfo = pd.DataFrame([{"form": fm["id"], "id_prefix": fm["id_prefix"],
                               **{f"label_{lg}": fm["label"].get(lg, "") for lg in langs},
                               **{f"instructions_{lg}": fm["instructions"].get(lg, "")
                                  for lg in langs}} for fm in self.forms.values()])
        rev_cols = ["item_id", "version", "date", "change", "reason"]
        ci_cols = ["item_id", "round", "date", "language", "participants", "note", "action"]
        revs = [{"item_id": it["item_id"], **{k: r.get(k) for k in rev_cols[1:]}}
                for it in self.items for r in it["revisions"]]
        cis = [{"item_id": it["item_id"], **{k: r.get(k) for k in ci_cols[1:]}}
               for it in self.items for r in it["cognitive_interviews"]]
        for lst in (revs, cis):
            for r in lst:
                for k in ("change", "reason", "note", "action"):
                    if isinstance(r.get(k), str):
                        r[k] = " ".join(r[k].split())
        return Bank(constructs=cons, scales=scales, items=items, background=bg,
                    forms=tuple(self.forms), findings=finds, form_info=finfo,
                    revisions=(pd.DataFrame(revs, columns=rev_cols) if revs
                               else empty_frame(rev_cols)),
                    cognitive_interviews=(pd.DataFrame(cis, columns=ci_cols) if cis
                                          else empty_frame(ci_cols)),
                    languages=tuple(langs),
                    missing_codes={c: dict(m["label"]) for c, m in self.missing.items()},
                    name=self.meta.get("name", ""),
                    version=self.meta.get("version", ""), path=str(self.folder))


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
