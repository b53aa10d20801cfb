"""ci/thread_check.py: it finds an output that depends on the thread count, and only that."""

import sys
from pathlib import Path

import nbformat
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "ci"))
thread_check = pytest.importorskip("thread_check")


def committed_notebook(tmp_path, source, output):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(source)
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=output)]
    nb.cells = [cell]
    path = tmp_path / "01_fixture.ipynb"
    nbformat.write(nb, path)
    return path, nb


def test_an_output_that_names_the_thread_count_is_reported(tmp_path):
    path, committed = committed_notebook(
        tmp_path, "import os\nprint(os.environ['OMP_NUM_THREADS'])", "1\n"
    )
    same, total, notes = thread_check.compare(committed, thread_check.execute(path, 2, 60))
    assert (same, total) == (0, 1)
    assert "'1' -> '2'" in notes[0]


def test_a_thread_independent_output_is_identical(tmp_path):
    path, committed = committed_notebook(tmp_path, "print(sum(range(10)))", "45\n")
    assert thread_check.compare(committed, thread_check.execute(path, 4, 60)) == (1, 1, [])
