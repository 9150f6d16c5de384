"""The README's Python example runs as written."""
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_example_runs():
    block = re.search(r"```python\n(.*?)```", README.read_text(), re.S).group(1)
    namespace: dict = {}
    exec(compile(block, "README.md", "exec"), namespace)  # noqa: S102 - our own README
    assert namespace["fit"].converged
    assert "chronic_absence" in str(namespace["ins"].link(namespace["scores"],
                                                          namespace["sim"].outcomes).outcome)
