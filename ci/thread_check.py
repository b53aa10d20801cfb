"""Do the chapters print the same numbers whatever the thread count? (`make thread-check`)

Executes every committed chapter (book/NN_*.ipynb) again in the book's pinned environment
(.venv) and the Makefile's reproducibility settings, with one thread (as `make notebooks`
does) and once per other thread count (default 2 and 4), with OMP_NUM_THREADS,
MKL_NUM_THREADS and OPENBLAS_NUM_THREADS set to it, and compares **every** text output with
the one-thread run's: the cells tagged nbval-ignore-output too, since those differ across
processors but must not differ across thread counts on one processor (every chapter calls
`seed_everything`, which fixes PyTorch's intra-op threads to one). The baseline is executed
here, not read from the committed notebook: the committed tagged outputs come from whichever
processor ran `make notebooks` last (nbval checks the untagged ones against the committed).
Prints per chapter and thread count how many text
outputs are identical and the first differing line of each cell that is not. The exit status
is non-zero when a chapter fails or any output differs.

    .venv/bin/python ci/thread_check.py [--threads 2,4] [--chapters 01_perceptron,...]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

sys.path.insert(0, str(Path(__file__).resolve().parent))
from colab_check import first_difference, text_of  # noqa: E402 (one comparison, two checks)

ROOT = Path(__file__).resolve().parent.parent
# The Makefile's DETERMINISTIC_ENV, less the thread counts that this check varies.
FIXED = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "MKL_CBWR": "COMPATIBLE",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
}


def execute(path: Path, threads: int, timeout: int) -> dict:
    """The notebook executed afresh with ``threads`` BLAS/OpenMP threads (a dict)."""
    nb = nbformat.read(path, as_version=4)
    saved = {k: os.environ.get(k) for k in (*FIXED, "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    os.environ.update(FIXED)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = str(threads)
    try:  # the kernel inherits this process's environment
        with tempfile.TemporaryDirectory() as work:
            client = NotebookClient(
                nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": work}}
            )
            client.execute()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return nb


def compare(committed, fresh) -> tuple[int, int, list[str]]:
    """Identical and compared text outputs (tagged cells included), and the differences."""
    old = [c for c in committed.cells if c.cell_type == "code"]
    new = [c for c in fresh.cells if c.cell_type == "code"]
    same = total = 0
    notes = []
    for index, (a, b) in enumerate(zip(old, new, strict=True)):
        ta, tb = text_of(a), text_of(b)
        if not ta and not tb:
            continue
        if "Executed with" in ta:  # names the thread count on purpose
            continue
        total += 1
        if ta == tb:
            same += 1
        else:
            notes.append(f"cell {index}: {first_difference(ta, tb)}")
    return same, total, notes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", default="2,4", help="comma-separated thread counts (2,4)")
    parser.add_argument("--chapters", help="comma-separated, e.g. 01_perceptron,07_gans")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell (600)")
    args = parser.parse_args()
    counts = [int(n) for n in args.threads.split(",")]
    paths = sorted((ROOT / "book").glob("[0-9][0-9]_*.ipynb"))
    if args.chapters:
        wanted = set(args.chapters.split(","))
        paths = [p for p in paths if p.stem in wanted]
    failed = 0
    all_same = all_total = 0
    for path in paths:
        try:  # the baseline: one thread, on this processor
            committed = execute(path, 1, args.timeout)
        except Exception as error:
            failed += 1
            line = str(error).strip().splitlines()[-1:] or [type(error).__name__]
            print(f"{path.stem}, 1 thread: FAILED: {line[0][:150]}", flush=True)
            continue
        for threads in counts:
            start = time.monotonic()
            try:
                fresh = execute(path, threads, args.timeout)
            except Exception as error:  # a failing chapter is a finding, reported and counted
                failed += 1
                line = str(error).strip().splitlines()[-1:] or [type(error).__name__]
                print(f"{path.stem}, {threads} threads: FAILED: {line[0][:150]}", flush=True)
                continue
            same, total, notes = compare(committed, fresh)
            all_same, all_total = all_same + same, all_total + total
            secs = time.monotonic() - start
            print(
                f"{path.stem}, {threads} threads: {same}/{total} text outputs identical to "
                f"1 thread's ({secs:.0f} s)",
                flush=True,
            )
            for note in notes:
                print(f"    {note}")
    print(
        f"thread-check: {all_same}/{all_total} text outputs identical over threads {counts}; "
        f"{failed} chapter runs failed"
    )
    return 0 if failed == 0 and all_same == all_total else 1


if __name__ == "__main__":
    sys.exit(main())
