"""Execute every exercise notebook and its solution at the `tiny` preset and read the checkers' verdicts:
every solution passes every check, and every unfilled stub fails every check (no checker is vacuous)."""

import json
import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from diffbook.exercises.core import LOG_ENV

ROOT = Path(__file__).resolve().parent.parent
STUBS = sorted((ROOT / "exercises").glob("*.ipynb"))
CELL_TIMEOUT_S = 300  # per cell: the slowest exercise cell takes well under a minute at `tiny`


def run(path: Path, log: Path) -> list[dict]:
    nb = nbformat.read(path, as_version=4)
    os.environ[LOG_ENV] = str(log)
    try:
        NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                       resources={"metadata": {"path": str(path.parent)}}).execute()
    finally:
        os.environ.pop(LOG_ENV, None)
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


@pytest.mark.slow
@pytest.mark.parametrize("stub", STUBS, ids=lambda p: p.stem)
def test_solutions_pass_and_stubs_fail(stub, tmp_path):
    solved = run(ROOT / "exercises" / "solutions" / stub.name, tmp_path / "solution.jsonl")
    unsolved = run(stub, tmp_path / "stub.jsonl")
    labels = [v["exercise"] for v in solved]
    assert len(set(labels)) >= 5, f"{stub.name}: only {len(set(labels))} checked exercises"
    assert [v["exercise"] for v in unsolved] == labels, "stub and solution must run the same checks"
    assert all(v["passed"] for v in solved), [v for v in solved if not v["passed"]]
    assert not any(v["passed"] for v in unsolved), [v for v in unsolved if v["passed"]]
    # an unfilled stub gets a clear verdict, never the catch-all of a checker that crashed on it
    assert not any("checking your answer raised" in v["message"] for v in unsolved), unsolved
    # worked solutions are the book's model answers: they do not change their inputs in place
    assert not any("changed its input" in v["message"] for v in solved), solved
