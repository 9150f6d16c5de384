"""Read YAML safely while keeping the line of every mapping, key and list element; say schema
errors at those lines.

The bank and the plans are data, never code: files are read with a subclass of PyYAML's
``SafeLoader`` (the loader behind ``yaml.safe_load``) whose mapping and sequence constructors
return `LineDict` and `LineList`, which remember where each key and element starts. Booleans follow
YAML 1.2 (only ``true``/``false``), so ``No``/``Yes``/``on``/``off`` stay text. Duplicate keys in a
mapping (which ``yaml.safe_load`` silently overwrites) are recorded as problems.

The files are validated against pydantic v2 models (`instrument.bank.schema`,
`instrument.plans`); `schema_problems` turns a `pydantic.ValidationError` into one `BankProblem`
per error, ``file:line: key.path: what was expected``, with the line taken from the tree read here
and the expectation taken from the model's declaration (`Expect`, number bounds, field
descriptions, the keys a model declares).
"""
from __future__ import annotations

import datetime as _dt
import difflib
import re
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Annotated, Iterable, Mapping, Union

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import InitErrorDetails, PydanticCustomError


@dataclass(frozen=True)
class BankProblem:
    """One problem found in a bank: where it is and what was expected.

    Attributes
    ----------
    file : str
        Path of the file, as given.
    line : int or None
        1-based line number; None when the problem concerns a whole file (e.g. it is missing).
    message : str
        What is wrong and what was expected.
    """

    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.message}"

    def to_dict(self) -> dict:
        return {"file": self.file, "line": self.line, "message": self.message}

    @classmethod
    def from_dict(cls, d: dict) -> "BankProblem":
        return cls(file=d["file"], line=d.get("line"), message=d["message"])


class LineDict(dict):
    """A dict that remembers its own start line and the line of each key (1-based)."""

    line: int = 0

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.key_lines: dict[Any, int] = {}

    def line_of(self, key: Any) -> int:
        """Line of ``key`` when present, else the line where the mapping starts."""
        return self.key_lines.get(key, self.line)


class LineList(list):
    """A list that remembers its own start line and the line of each element (1-based)."""

    line: int = 0

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.item_lines: list[int] = []

    def line_of(self, i: int) -> int:
        return self.item_lines[i] if 0 <= i < len(self.item_lines) else self.line


class _LineLoader(yaml.SafeLoader):
    """``SafeLoader`` that builds `LineDict`/`LineList` and records duplicate keys."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self.duplicates: list[tuple[int, str, int]] = []  # (line, key, first line)


def _construct_map(loader: _LineLoader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    d = LineDict()
    d.line = node.start_mark.line + 1
    for k_node, v_node in node.value:
        key = loader.construct_object(k_node, deep=True)
        line = k_node.start_mark.line + 1
        try:
            hash(key)
        except TypeError:
            key = str(key)
        if key in d:
            loader.duplicates.append((line, str(key), d.key_lines[key]))
        d[key] = loader.construct_object(v_node, deep=True)
        d.key_lines[key] = line
    return d


def _construct_seq(loader: _LineLoader, node: yaml.SequenceNode) -> LineList:
    out = LineList(loader.construct_object(child, deep=True) for child in node.value)
    out.line = node.start_mark.line + 1
    out.item_lines = [child.start_mark.line + 1 for child in node.value]
    return out


# YAML 1.2 booleans: only true/false (any case as YAML 1.2's core schema spells them), so that
# "No", "Yes", "on" and "off" (YAML 1.1 booleans) stay text, e.g. a Norwegian language code or a
# response label "No".
_LineLoader.yaml_implicit_resolvers = {
    ch: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for ch, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_LineLoader.add_implicit_resolver("tag:yaml.org,2002:bool",
                                  re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                                  list("tTfF"))
_LineLoader.add_constructor("tag:yaml.org,2002:map", _construct_map)
_LineLoader.add_constructor("tag:yaml.org,2002:seq", _construct_seq)


def read_yaml(path: str | Path, shown: str) -> tuple[Any, list[BankProblem]]:
    """Parse one YAML file; returns ``(data, problems)`` and never raises on bad input.

    Parameters
    ----------
    path : path
        File to read.
    shown : str
        How the file is named in problems.
    """
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        return None, [BankProblem(shown, None, "file not found; expected a YAML file here")]
    except OSError as exc:
        return None, [BankProblem(shown, None, f"cannot read the file ({exc.strerror}); "
                                               "expected a readable YAML file")]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        return None, [BankProblem(shown, line, "text is not valid UTF-8; expected a UTF-8 "
                                               "encoded YAML file")]
    loader = _LineLoader(text)
    try:
        data = loader.get_single_data()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = mark.line + 1 if mark is not None else None
        what = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        ctx = getattr(exc, "context", None)
        detail = f"{ctx}, {what}" if ctx else what
        return None, [BankProblem(shown, line, f"invalid YAML ({detail}); expected well-formed "
                                               "YAML (check indentation, colons and quotes)")]
    finally:
        loader.dispose()
    problems = [BankProblem(shown, line, f"duplicate key '{key}' (first at line {first}); "
                                         "expected each key once in a mapping")
                for line, key, first in loader.duplicates]
    return data, problems


def plain(obj: Any) -> Any:
    """Convert `LineDict`/`LineList` (recursively) to plain dicts/lists; dates to ISO text."""
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [plain(v) for v in obj]
    if isinstance(obj, (_dt.date, _dt.datetime)):
        return obj.isoformat()
    return obj


# --------------------------------------------------------------------------------------------
# Schema errors at their lines
# --------------------------------------------------------------------------------------------

class Strict(BaseModel):
    """The base of every schema of a YAML file: unknown keys are refused (a typo is never
    ignored), values are not coerced (``"3"`` is text, ``1`` is not true) and records are
    frozen."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Expect(str):
    """What a declared type expects, in words, for messages (``Annotated[str, ..., Expect("an
    identifier")]``); pydantic ignores it, `schema_problems` quotes it."""


def fail_at(problems: Iterable[tuple[tuple, str, Any]]) -> None:
    """Raise, from inside a validator, one error per ``(loc below the value, message, input)``;
    pydantic prefixes the value's own location, so each problem keeps its key path and line."""
    errors = [InitErrorDetails(type=PydanticCustomError("expected", "{text}", {"text": text}),
                               loc=loc, input=got) for loc, text, got in problems]
    if errors:
        raise ValidationError.from_exception_data("schema", errors)


def _is_model(ann: Any) -> bool:
    return isinstance(ann, type) and issubclass(ann, BaseModel)


def _unwrap(ann: Any) -> tuple[Any, list]:
    """The annotation without ``Optional``/``Annotated``, and the ``Annotated`` metadata."""
    meta: list = []
    while True:
        origin = typing.get_origin(ann)
        if origin is Annotated:
            ann, *extra = typing.get_args(ann)
            for m in extra:
                meta.extend(m.metadata if isinstance(m, FieldInfo) else [m])
        elif origin in (Union, types.UnionType):
            args = [a for a in typing.get_args(ann) if a is not type(None)]
            nested = [a for a in args if _is_model(_unwrap(a)[0])
                      or typing.get_origin(_unwrap(a)[0]) in (dict, list)]
            ann = (nested or args)[0]
        else:
            return ann, meta


def _field(model: type[BaseModel], key: Any) -> FieldInfo | None:
    """The field of ``model`` read from ``key`` (its name or its alias)."""
    return next((f for name, f in model.model_fields.items() if (f.alias or name) == key), None)


def _declared_at(model: Any, loc: tuple) -> tuple[Any, list, str | None]:
    """The annotation declared at ``loc`` below ``model`` (walking models, dicts and lists), its
    constraints and its field description; ``(None, [], None)`` where the walk loses the way."""
    ann, meta, doc = model, [], None
    for i, part in enumerate(loc):
        if part == "[key]":
            continue
        ann, _ = _unwrap(ann)
        which = 0 if loc[i + 1:i + 2] == ("[key]",) else 1     # a dict's key or its value
        if _is_model(ann):
            f = _field(ann, part)
            if f is not None:
                ann, meta, doc = f.annotation, list(f.metadata), f.description
                continue
            extra = typing.get_type_hints(ann, include_extras=True).get("__pydantic_extra__")
            if extra is None:
                return None, [], None
            ann, meta, doc = typing.get_args(extra)[which], [], None
        elif typing.get_origin(ann) is dict:
            ann, meta, doc = typing.get_args(ann)[which], [], None
        elif typing.get_origin(ann) is list:
            ann, meta, doc = typing.get_args(ann)[0], [], None
        else:
            return None, [], None
    ann, more = _unwrap(ann)
    return ann, meta + more, doc


def _bounds(meta: list) -> str:
    """Declared bounds as words: `` in (0, 1]``, `` >= 2``, or nothing."""
    lo = hi = None
    for m in meta:
        for name, sign in (("gt", "("), ("ge", "[")):
            if getattr(m, name, None) is not None:
                lo = (sign, getattr(m, name))
        for name, sign in (("lt", ")"), ("le", "]")):
            if getattr(m, name, None) is not None:
                hi = (sign, getattr(m, name))
    if lo and hi:
        return f" in {lo[0]}{lo[1]:g}, {hi[1]:g}{hi[0]}"
    if lo:
        return f" {'>' if lo[0] == '(' else '>='} {lo[1]:g}"
    if hi:
        return f" {'<' if hi[0] == ')' else '<='} {hi[1]:g}"
    return ""


_NUMBER_ERRORS = {"int_type", "int_parsing", "int_from_float", "float_type", "float_parsing",
                  "finite_number", "greater_than", "greater_than_equal", "less_than",
                  "less_than_equal"}


def _expected(err: Mapping[str, Any], loc: tuple, model: Any, member: str | None = None) -> str:
    """What pydantic's error means, said as 'what was expected; got what' (``member``: the
    union member the error is about)."""
    t, got, ctx = err["type"], err.get("input"), err.get("ctx") or {}
    if t == "expected":
        return str(ctx["text"])
    if t == "extra_forbidden":
        parent = _declared_at(model, loc[:-1])[0]
        keys = ([f.alias or name for name, f in parent.model_fields.items()]
                if _is_model(parent) else [])
        close = difflib.get_close_matches(str(loc[-1]), keys, n=1) if loc else []
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return (f"unknown key{hint}; expected one of {keys}" if keys
                else "unknown key; expected only the keys the schema declares")
    ann, meta, doc = _declared_at(model, loc)
    if t == "missing":
        return f"required key missing; expected {doc}" if doc else "required key missing"
    said = [m for m in meta if isinstance(m, Expect)]
    if said and t not in ("value_error",):
        return f"expected {said[0]}; got {got!r}"
    if t in _NUMBER_ERRORS:
        what = "a whole number" if ann is int or member == "int" else "a number"
        return f"expected {what}{_bounds(meta)}; got {got!r}"
    if t == "literal_error":
        return f"expected one of {ctx.get('expected', '')}; got {got!r}"
    if t in ("string_type",):
        return f"expected text; got {got!r}"
    if t in ("bool_type", "bool_parsing"):
        return f"expected true or false; got {got!r}"
    if t in ("list_type",):
        return f"expected a list; got {type(got).__name__}"
    if t in ("dict_type", "model_type", "model_attributes_type"):
        return f"expected a mapping of key: value; got {type(got).__name__}"
    if t == "too_short":
        n = ctx.get("min_length")
        return f"expected at least {n} entr{'y' if n == 1 else 'ies'}; got {got!r}"
    if t == "value_error":
        return str(ctx.get("error", err["msg"]))
    return f"{err['msg']}; got {got!r}"


def _line_of(root: Any, loc: tuple) -> tuple[int | None, list[str]]:
    """The line of the deepest key of ``loc`` found in ``root``, and the key path as text."""
    line = getattr(root, "line", None) or None
    node, path = root, []
    for part in loc:
        if isinstance(node, LineDict) and part in node:
            line = node.line_of(part) or line
            node = node[part]
            path.append(str(part))
        elif isinstance(node, LineList) and isinstance(part, int) and 0 <= part < len(node):
            line = node.line_of(part) or line
            node = node[part]
            path.append(f"[{part}]")
        elif isinstance(part, int):
            path.append(f"[{part}]")
        elif isinstance(part, str) and not part[:1].isupper() and "[" not in part:
            path.append(part)       # a key that is absent (missing) or a validator's name
    return line, path


def _union_member(part: Any) -> bool:
    """True for the part of an error's location that names the member of a union pydantic tried
    (``str``, ``int``, ``list[str]``, ``function-after[...]``), not a key of the file."""
    return isinstance(part, str) and part != "[key]" and (
        part in ("str", "int", "float", "bool") or "[" in part)


def _either(texts: list[str]) -> str:
    """The expectations of a union's members as one: ``expected text or a whole number; got x``."""
    parts = [t.removeprefix("expected ").rsplit("; got ", 1) for t in texts]
    if len(texts) > 1 and all(t.startswith("expected ") and len(p) == 2 for t, p in
                              zip(texts, parts)) and len({p[1] for p in parts}) == 1:
        kinds = list(dict.fromkeys(p[0] for p in parts))
        if "a number" in kinds and "a whole number" in kinds:
            kinds.remove("a whole number")
        return f"expected {' or '.join(kinds)}; got {parts[0][1]}"
    return "; ".join(dict.fromkeys(texts))


def schema_problems(exc: ValidationError, root: Any, file: str, model: type[BaseModel]
                    ) -> list[BankProblem]:
    """Each error of validating ``root`` (the tree `read_yaml` returned) against ``model`` as a
    `BankProblem` ``file:line: key.path: what was expected``, by line, each once; the errors of
    the members of one union (a value that may be text or a number) are said as one."""
    said: dict[tuple, list[str]] = {}
    for err in exc.errors():
        members = [p for p in err["loc"] if _union_member(p)]
        loc = tuple(p for p in err["loc"] if not _union_member(p))
        line, path = _line_of(root, loc)
        key = ".".join(path).replace(".[", "[") or "(top level)"
        text = _expected(err, loc, model, members[-1] if members else None)
        said.setdefault((line, key), []).append(text)
    out = [BankProblem(file, line, f"{key}: {_either(texts)}")
           for (line, key), texts in said.items()]
    return sorted(out, key=lambda p: p.line or 0)
