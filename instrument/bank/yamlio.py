"""Read YAML safely while keeping the line of every mapping, key and list element.

The bank is data, never code: files are read with a subclass of PyYAML's ``SafeLoader`` (the
loader behind ``yaml.safe_load``) whose mapping and sequence constructors return `LineDict` and
`LineList`, which remember where each key and element starts, so schema errors can say
``file:line``. Booleans follow YAML 1.2 (only ``true``/``false``). Duplicate keys in a mapping (which ``yaml.safe_load`` silently overwrites) are
recorded as problems.
"""
from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


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
