"""scripts/setup.sh's make_venv: a .venv set up from the same pyproject.toml is reused, any
other is set up again (python3 and the venv's python are stand-ins that log their calls)."""
from __future__ import annotations

import hashlib
import os
import stat
import subprocess
from pathlib import Path

import pytest

SETUP = Path(__file__).resolve().parents[1] / "scripts" / "setup.sh"

LOGGER = """#!/bin/sh
echo "$(basename "$0") $*" >> "{log}"
if [ "$1 $2" = "-m venv" ]; then
  mkdir -p "$3/bin" && cp "$0" "$3/bin/python"
fi
"""


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    exe = bin_dir / "python3"
    exe.write_text(LOGGER.format(log=tmp_path / "log"))
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    return tmp_path


def _make_venv(clone: Path, extras: str) -> list[str]:
    (clone / "log").unlink(missing_ok=True)
    env = {**os.environ, "PATH": f"{clone / 'bin'}:{os.environ['PATH']}"}
    subprocess.run(["bash", "-c", f'source "{SETUP}" && make_venv "{extras}"'], cwd=clone,
                   env=env, check=True)
    return (clone / "log").read_text().splitlines()


def test_a_venv_from_the_same_pyproject_is_reused(clone):
    first = _make_venv(clone, "[test]")
    assert first[0] == "python3 -m venv .venv"
    assert any("install" in c and "-e .[test]" in c for c in first)
    stamp = clone / ".venv" / ".setuptest"
    assert stamp.read_text().strip() == \
        hashlib.sha256((clone / "pyproject.toml").read_bytes()).hexdigest()
    # again: no venv, no pip; the modules are still compiled
    again = _make_venv(clone, "[test]")
    assert again == ["python -c import sys", "python -m compileall -q instrument"]


def test_other_extras_or_a_changed_pyproject_set_up_again(clone):
    _make_venv(clone, "[test]")
    assert _make_venv(clone, "")[0] == "python3 -m venv .venv"        # no stamp for ""
    assert len(_make_venv(clone, "")) == 2                              # now reused
    (clone / "pyproject.toml").write_text("[project]\nname = 'y'\n")
    assert _make_venv(clone, "")[0] == "python3 -m venv .venv"
