"""The CLI starts, documents itself and runs `validate` writing results.json."""
import json

from click.testing import CliRunner

from instrument.cli import main


def test_help_lists_validate():
    res = CliRunner().invoke(main, ["--help"])
    assert res.exit_code == 0, res.output
    assert "validate" in res.output


def test_validate_writes_results(tmp_path):
    res = CliRunner().invoke(main, ["validate", "--out", str(tmp_path / "v")])
    payload = json.loads((tmp_path / "v" / "results.json").read_text())
    names = [s["name"] for s in payload["stages"]]
    assert names[0] == "bank" and "cfa" in names
    assert all(s["status"] in {"ok", "unavailable", "failed"} for s in payload["stages"])
    assert res.exit_code == (0 if all(s["status"] != "failed" for s in payload["stages"]) else 1)
