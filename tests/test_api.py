"""The public API: one ``__all__`` in instrument/__init__.py, covering every documented name."""
import ast
import re
from pathlib import Path

import instrument

ROOT = Path(__file__).resolve().parents[1]

# The public API block of the design document (the names built so far), as `ins.NAME(...)`.
DESIGN_API = ("load_bank", "simulate", "ingest", "cfa", "invariance", "reliability", "icc",
              "school_scores", "link", "montecarlo", "power", "dynamic_cutoffs")


def _readme_names() -> set[str]:
    block = re.search(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S).group(1)
    return set(re.findall(r"\bins\.([A-Za-z_]\w*)", block))


def test_all_is_assigned_once_and_lists_each_name_once():
    tree = ast.parse((ROOT / "instrument" / "__init__.py").read_text())
    assigns = [n for n in ast.walk(tree)
               if isinstance(n, (ast.Assign, ast.AugAssign))
               and any(getattr(t, "id", None) == "__all__"
                       for t in (n.targets if isinstance(n, ast.Assign) else [n.target]))]
    assert len(assigns) == 1
    assert len(instrument.__all__) == len(set(instrument.__all__))


def test_every_exported_name_exists():
    assert [n for n in instrument.__all__ if not hasattr(instrument, n)] == []


def test_documented_names_are_exported():
    documented = _readme_names() | set(DESIGN_API)
    assert "cfa" in documented and "invariance" in documented
    assert sorted(documented - set(instrument.__all__)) == []


def test_public_callables_in_the_namespace_are_exported():
    # every function or class bound at the top of the package is part of __all__ (no name is
    # public by accident), modules and private names aside
    public = {n for n, v in vars(instrument).items()
              if not n.startswith("_") and callable(v) and not isinstance(v, type(instrument))}
    assert sorted(public - set(instrument.__all__)) == []
