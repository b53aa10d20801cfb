"""Does every chapter run when a reader changes its first cell to CUDA? (`make device-check`)

Every chapter's first cell says ``DEVICE = companion.use_device("cpu")``: the book's numbers
are CPU numbers. A reader on a GPU runtime may change it to ``"cuda"``, and the chapter must
still run to the end with all its asserts (the last digits may differ). This check makes that
change in each committed chapter (book/NN_*.ipynb) and executes it in the pinned environment
(.venv) with the Makefile's reproducibility settings:

- on a machine with a GPU (``torch.cuda.is_available()``), on the GPU (``--real`` insists);
- elsewhere on a CUDA device simulated on the CPU (ci/simulated_cuda.py, inserted as a cell
  before the first): it finds the tensors left on the CPU beside CUDA ones and the ``.numpy()``
  calls on CUDA tensors, not CUDA's own rounding.

Chapters run side by side, one per core (``--jobs``), each kernel with one thread. It prints
per chapter whether it ran and how many of the committed text outputs of untagged
cells came out identical, with the first differing line of each that did not (under the
simulation they should all be identical: the arithmetic is the CPU's). The exit status is
non-zero when a chapter fails, when a first cell has no ``use_device("cpu")`` to change, or
(simulated) when an output differs.

    .venv/bin/python ci/device_check.py [--chapters 01_perceptron,...] [--real] [--jobs 2]
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
from nbclient import NotebookClient

sys.path.insert(0, str(Path(__file__).resolve().parent))
from colab_check import compare  # noqa: E402 (one comparison for every check)

ROOT = Path(__file__).resolve().parent.parent
ARROW = re.compile(r"^\s*-+>\s*\d+\s")  # IPython's mark of the failing line
CPU_LINE = 'companion.use_device("cpu")'
CUDA_LINE = 'companion.use_device("cuda")'
# The Makefile's DETERMINISTIC_ENV.
FIXED = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "MKL_CBWR": "COMPATIBLE",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
}
SIMULATE = (
    "import sys\n"
    "sys.path.insert(0, {ci!r})\n"
    "import simulated_cuda  # added by ci/device_check.py: CUDA simulated on the CPU\n"
    "simulated_cuda.enable()"
)


def switched(path: Path, simulate: bool) -> nbformat.NotebookNode:
    """The chapter as a reader on a GPU runtime runs it (``ValueError`` if it cannot be)."""
    nb = nbformat.read(path, as_version=4)
    first = next(c for c in nb.cells if c.cell_type == "code")
    if CPU_LINE not in first.source:
        raise ValueError(f"{path.name}: the first code cell has no {CPU_LINE} to change")
    first.source = first.source.replace(CPU_LINE, CUDA_LINE)
    if simulate:
        cell = nbformat.v4.new_code_cell(SIMULATE.format(ci=str(ROOT / "ci")))
        nb.cells.insert(nb.cells.index(first), cell)
    return nb


def execute(nb: nbformat.NotebookNode, timeout: int) -> None:
    """Execute ``nb`` in place, in an empty directory, with the Makefile's settings."""
    with tempfile.TemporaryDirectory() as work:
        client = NotebookClient(
            nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": work}}
        )
        client.execute(env={**os.environ, **FIXED})  # the kernel's own environment


def check(path: Path, real: bool, where: str, timeout: int) -> tuple[list[str], bool, int, int]:
    """Run one chapter switched to CUDA: its report lines, failed?, identical and compared."""
    start = time.monotonic()
    try:
        nb = switched(path, simulate=not real)
        execute(nb, timeout)
    except Exception as error:  # a failing chapter is the finding: reported and counted
        text = re.sub(r"\x1b\[[0-9;]*m", "", str(error)).strip()
        lines = [x for x in text.splitlines() if x.strip()] or [type(error).__name__]
        found = []  # the chapter's own frames: "Cell In[n], line k: <the line>"
        for index, line in enumerate(lines):
            if line.startswith("Cell In[") and len(found) < 2:
                arrow = next((x for x in lines[index + 1 :] if ARROW.match(x)), "")
                found.append(f"{line.strip()}: {ARROW.sub('', arrow).strip()}")
        found = [f"    {x[:160]}" for x in [*found, lines[-1]]]
        return [f"{path.stem}: FAILED {where}:", *found], True, 0, 0
    committed = nbformat.read(path, as_version=4)
    same, total, _, _, notes = compare(committed, without_added_cell(nb))
    notes = [f"    {n}" for n in notes if "Executed with" not in n]
    secs = time.monotonic() - start
    head = (
        f"{path.stem}: ran {where}; {same}/{total} untagged text outputs identical to the "
        f"committed ({secs:.0f} s)"
    )
    return [head, *notes], False, same, total


def without_added_cell(nb: nbformat.NotebookNode) -> dict:
    """``nb`` less the simulation's cell, so that its cells line up with the committed ones."""
    cells = [c for c in nb.cells if "import simulated_cuda" not in c.get("source", "")]
    return {"cells": cells}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chapters", help="comma-separated, e.g. 01_perceptron,07_gans")
    parser.add_argument("--real", action="store_true", help="fail unless a GPU is present")
    parser.add_argument(
        "--jobs", type=int, default=os.cpu_count() or 1, help="chapters at a time (the cores)"
    )
    parser.add_argument("--timeout", type=int, default=900, help="seconds per cell (900)")
    args = parser.parse_args()
    import torch  # here, so that --help needs no torch

    real = torch.cuda.is_available()
    if args.real and not real:
        print("device-check: --real, but torch.cuda.is_available() is False here")
        return 1
    where = f"on {torch.cuda.get_device_name()}" if real else "on CUDA simulated on the CPU"
    paths = sorted((ROOT / "book").glob("[0-9][0-9]_*.ipynb"))
    if args.chapters:
        wanted = set(args.chapters.split(","))
        paths = [p for p in paths if p.stem in wanted]
    failed = all_same = all_total = 0
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:  # one kernel process per job
        runs = pool.map(lambda p: check(p, real, where, args.timeout), paths)
        for lines, chapter_failed, same, total in runs:  # in chapter order
            print("\n".join(lines), flush=True)
            failed += chapter_failed
            all_same, all_total = all_same + same, all_total + total
    print(
        f"device-check ({where}): {len(paths) - failed}/{len(paths)} chapters ran; "
        f"{all_same}/{all_total} untagged text outputs identical"
    )
    if failed:
        return 1
    return 0 if real or all_same == all_total else 1


if __name__ == "__main__":
    sys.exit(main())
