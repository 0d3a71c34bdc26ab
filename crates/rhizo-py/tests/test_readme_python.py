"""The README's three-process Python example, run as written: its `counter.py` block saved as
it stands and started three times, as the README says, in one directory. Every process is
ended by pid, even on failure."""

from __future__ import annotations

import re
from pathlib import Path

from net_helpers import children

README = Path(__file__).resolve().parents[3] / "README.md"
HEADING = "#### Three Python processes replicating a counter"


def counter_script() -> str:
    """The first Python block under the README's three-process heading."""
    text = README.read_text()
    start = text.index(HEADING)
    block = re.search(r"```python\n(.*?)```", text[start:], re.DOTALL)
    assert block is not None, "the README's counter.py block"
    return block.group(1)


def test_readme_three_python_processes_replicate_a_counter(tmp_path: Path) -> None:
    (tmp_path / "counter.py").write_text(counter_script())
    names = ["n1", "n2", "n3"]
    with children(*(["counter.py", name] for name in names), cwd=str(tmp_path)) as nodes:
        lines = [node.line(timeout=90) for node in nodes]
        codes = [node.wait(timeout=60) for node in nodes]
    assert codes == [0, 0, 0], [node.stderr() for node in nodes]
    states = set()
    for name, line in zip(names, lines):
        # "nX sees 3 state 0x…", as the README says.
        match = re.fullmatch(rf"{name} sees 3 state (0x[0-9a-f]+)", line)
        assert match is not None, line
        states.add(match.group(1))
    assert len(states) == 1, lines
    assert all((tmp_path / f"data-{name}").is_dir() for name in names)
