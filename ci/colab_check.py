"""Run the book as a Google Colab reader does, and compare with the committed outputs.

`make colab-check` (ci/colab-check.mk) runs this file with the system Python. It

1. creates .colab-venv with Python 3.13 (Colab's; python3.11 where no 3.13 is installed) and
   installs ci/colab-requirements.txt, Colab's versions, which are not the book's pinned
   environment (requirements.txt). companion is not installed: the chapters install it.
   The venv is reused while its stamp (interpreter and requirements) matches.
2. clones this repository into a temporary directory, so that what is tested is what is
   committed (--worktree also commits the working tree's changes in the clone).
3. for every book/NN_*.ipynb of the clone: uninstalls companion, points the first cell's
   `pip install git+{REPOSITORY}@main` at the clone, and executes the notebook with nbclient
   in a kernel of the venv, in an empty directory (Colab's /content), with two OpenMP threads
   and none of the Makefile's reproducibility variables (MKL_CBWR, ATEN_CPU_CAPABILITY, ...).
4. prints per chapter whether it ran, how many of the committed text outputs (stdout and
   text/plain results of the cells not tagged nbval-ignore-output) came out identical, and the
   first differing line of each cell that did not; then the totals. The exit status is non-zero
   when a chapter failed to run or the chapter's `pip install` replaced one of Colab's pins.

    python3 ci/colab_check.py [--chapters 01_perceptron,02_backpropagation] [--keep] [--fresh]
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = ROOT / "ci" / "colab-requirements.txt"
VENV = ROOT / ".colab-venv"
STAMP = VENV / ".colab-stamp"
KERNEL = "colab-check"
RESULTS = ROOT / "_build" / "colab-check"  # the freshly executed notebooks, for a closer look
IGNORE_TAG = "nbval-ignore-output"
# The Makefile's reproducibility settings: a Colab reader has none of them.
UNSET = (
    "MKL_CBWR",
    "ATEN_CPU_CAPABILITY",
    "ONEDNN_MAX_CPU_ISA",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "PYTHONPATH",
    "VIRTUAL_ENV",
    "JUPYTER_PATH",
)
REPOSITORY_LINE = re.compile(r'^(\s*REPOSITORY\s*=\s*)"[^"]*"', re.MULTILINE)
INSTALL_TARGET = 'f"git+{REPOSITORY}@main"'


def log(message: str = "") -> None:
    print(message, flush=True)


def run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    """Run quietly; show the command's output only when it fails."""
    done = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    if done.returncode != 0:
        noise = re.compile(r"^WARNING: Location .* is ignored")
        lines = [x for x in (done.stdout + done.stderr).splitlines() if not noise.match(x)]
        log("\n".join(lines[-40:]))
        raise SystemExit(f"colab-check: failed ({done.returncode}): {' '.join(cmd)}")
    return done


# -- 1. the venv ---------------------------------------------------------------------------------


def colab_python() -> str:
    found = sorted(glob.glob("/root/.pyenv/versions/3.13*/bin/python3.13"))
    if found:
        return found[-1]
    fallback = shutil.which("python3.11")
    if fallback is None:
        raise SystemExit("colab-check: neither Python 3.13 (pyenv) nor python3.11 found")
    log(f"colab-check: no Python 3.13 here, using {fallback} (Colab runs 3.13)")
    return fallback


def pinned() -> dict[str, str]:
    """The `name==version` lines of the requirements: what a chapter's install must keep."""
    pins = {}
    for line in REQUIREMENTS.read_text().splitlines():
        match = re.match(r"^\s*([A-Za-z0-9_.-]+)\s*==\s*([^\s#;]+)", line)
        if match:
            pins[match.group(1).lower()] = match.group(2)
    return pins


def venv_python() -> str:
    return str(VENV / "bin" / "python")


def setup_venv(keep: bool, fresh: bool) -> None:
    interpreter = colab_python()
    version = run([interpreter, "--version"]).stdout.strip()
    stamp = hashlib.sha256((interpreter + version + REQUIREMENTS.read_text()).encode()).hexdigest()
    if not fresh and STAMP.is_file() and STAMP.read_text().strip() == stamp:
        log(f"colab-check: reusing {VENV.name} ({version}; stamp matches)")
        return
    if VENV.exists() and (fresh or not keep):
        why = "--fresh" if fresh else "its stamp does not match"
        log(f"colab-check: re-creating {VENV.name} ({why})")
        shutil.rmtree(VENV)
    start = time.monotonic()
    if not (VENV / "bin" / "python").exists():
        run([interpreter, "-m", "venv", str(VENV)])
    log(f"colab-check: installing {REQUIREMENTS.relative_to(ROOT)} into {VENV.name} ({version});")
    log("             torch comes as a CUDA build (~3 GB) on the first run, a few minutes")
    pip = [venv_python(), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    run([*pip, "-r", str(REQUIREMENTS)])
    prefix = ["--prefix", str(VENV), "--name", KERNEL, "--display-name", "Colab check"]
    run([venv_python(), "-m", "ipykernel", "install", *prefix])
    STAMP.write_text(stamp + "\n")
    size = run(["du", "-sh", str(VENV)]).stdout.split()[0]
    log(f"colab-check: installed in {time.monotonic() - start:.0f} s, {VENV.name} is {size}")


def installed_versions() -> dict[str, str]:
    done = run([venv_python(), "-m", "pip", "list", "--format=json", "--disable-pip-version-check"])
    return {p["name"].lower(): p["version"] for p in json.loads(done.stdout)}


# -- 2. the clone --------------------------------------------------------------------------------


def clone(into: Path, worktree: bool) -> Path:
    target = into / "book-clone"
    run(["git", "clone", "--quiet", str(ROOT), str(target)])
    run(["git", "-C", str(target), "checkout", "--quiet", "-B", "main"])  # for `...@main`
    head = run(["git", "-C", str(target), "log", "-1", "--format=%h %s"]).stdout.strip()
    if worktree:
        listed = run(["git", "-C", str(ROOT), "ls-files", "-m", "-o", "-d", "--exclude-standard"])
        for name in sorted(set(listed.stdout.splitlines())):
            source, dest = ROOT / name, target / name
            if source.is_file():
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, dest)
            elif dest.exists():
                dest.unlink()
        run(["git", "-C", str(target), "add", "-A"])
        status = run(["git", "-C", str(target), "status", "--porcelain"]).stdout
        if status.strip():
            who = ["-c", "user.name=colab-check", "-c", "user.email=colab-check@localhost"]
            git_commit = ["git", "-C", str(target), *who, "commit", "--quiet", "-m", "worktree"]
            run([*git_commit])
    log(f"colab-check: testing {head[:80]}{' + the working tree' if worktree else ''}")
    return target


# -- 3. one chapter ------------------------------------------------------------------------------


def point_at_clone(nb: dict, repository: str) -> str | None:
    """Rewrite the first code cell's REPOSITORY; return why not when the cell is not the usual."""
    first = next((c for c in nb["cells"] if c["cell_type"] == "code"), None)
    if first is None:
        return "no code cell"
    source = "".join(first["source"])
    if INSTALL_TARGET not in source or "except ImportError" not in source:
        return f"the first code cell has no `except ImportError` with {INSTALL_TARGET}"
    rewritten, count = REPOSITORY_LINE.subn(lambda m: f'{m.group(1)}"{repository}"', source)
    if count != 1:
        return f"the first code cell sets REPOSITORY {count} times, not once"
    first["source"] = rewritten
    for cell in nb["cells"]:  # a cell the run does not reach must not keep the committed outputs
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
    return None


def colab_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in UNSET}
    env["OMP_NUM_THREADS"] = "2"  # Colab's free runtime: two cores
    env["PATH"] = f"{VENV / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def execute_one(source: str, dest: str, workdir: str, timeout: int) -> None:
    """Runs inside the venv: execute one notebook, write it and a small JSON result."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    nb = nbformat.read(source, as_version=4)
    client = NotebookClient(
        nb, kernel_name=KERNEL, timeout=timeout, resources={"metadata": {"path": workdir}}
    )
    result: dict = {"ok": True}
    try:
        client.execute()
    except (CellExecutionError, CellTimeoutError, DeadKernelError) as error:
        result = {"ok": False, "kind": type(error).__name__}
        lines = [x for x in str(error).strip().splitlines() if x.strip()]
        result["last_line"] = lines[-1] if lines else type(error).__name__
        code = [c for c in nb.cells if c.cell_type == "code"]
        for index, cell in enumerate(code):
            errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
            if errors:
                result["cell"] = index
                result["last_line"] = f"{errors[0]['ename']}: {errors[0]['evalue']}"
                result["traceback"] = errors[0].get("traceback", [])[-3:]
                break
        else:  # a timeout or a dead kernel leaves no error output: the cell that ran last
            counts = [i for i, c in enumerate(code) if c.get("execution_count")]
            result["cell"] = counts[-1] + 1 if counts else 0
    nbformat.write(nb, dest)
    Path(dest + ".json").write_text(json.dumps(result))


def text_of(cell: dict, stream: str = "stdout") -> str:
    parts = []
    for output in cell.get("outputs", []):
        kind = output.get("output_type")
        if kind == "stream" and output.get("name") == stream:
            parts.append(join(output.get("text", "")))
            continue
        if stream != "stdout":
            continue
        if kind == "stream" and output.get("name") == "stdout":
            parts.append(join(output.get("text", "")))
        elif kind == "execute_result":
            parts.append(join(output.get("data", {}).get("text/plain", "")) + "\n")
    return re.sub(r"at 0x[0-9a-fA-F]+>", "at 0xADDRESS>", "".join(parts))  # nbval.cfg's rule


def join(text: str | list[str]) -> str:
    return "".join(text) if isinstance(text, list) else text


def first_difference(old: str, new: str) -> str:
    a, b = old.splitlines(), new.splitlines()
    for i in range(max(len(a), len(b))):
        x = a[i] if i < len(a) else "<no line>"
        y = b[i] if i < len(b) else "<no line>"
        if x != y:
            return f"line {i + 1}: {x.strip()[:70]!r} -> {y.strip()[:70]!r}"
    return "whitespace only"


def compare(committed: dict, fresh: dict) -> tuple[int, int, int, int, list[str]]:
    """Identical, compared, skipped (tagged) and tagged-but-different text outputs, and notes."""
    old = [c for c in committed["cells"] if c["cell_type"] == "code"]
    new = [c for c in fresh["cells"] if c["cell_type"] == "code"]
    same = total = skipped = tagged_differ = unreached = 0
    notes = []
    for index, (a, b) in enumerate(zip(old, new, strict=False)):
        if b.get("execution_count") is None:  # after a failure: not run, not compared
            unreached += bool(text_of(a))
            continue
        warned = text_of(b, "stderr")
        if warned and warned != text_of(a, "stderr"):  # not compared; what the reader sees
            lines = [x.strip() for x in warned.splitlines() if x.strip()]
            named = [x for x in lines if re.search(r"\w(Warning|Error)\b", x)] or lines
            notes.append(f"cell {index}: new stderr output: {named[0][-110:]!r}")
        ta, tb = text_of(a), text_of(b)
        if not ta and not tb:
            continue
        if IGNORE_TAG in a.get("metadata", {}).get("tags", []):
            skipped += 1
            tagged_differ += ta != tb
            continue
        total += 1
        if ta == tb:
            same += 1
        else:
            notes.append(f"cell {index}: {first_difference(ta, tb)}")
    if unreached:
        notes.append(f"{unreached} cells with text output not reached: not compared")
    return same, total, skipped, tagged_differ, notes


def check_chapter(path: Path, repo: Path, work: Path, timeout: int, pins: dict) -> dict:
    name = path.stem
    run([venv_python(), "-m", "pip", "uninstall", "-y", "-q", "companion"])
    committed = json.loads(path.read_text())
    prepared = json.loads(path.read_text())
    why = point_at_clone(prepared, f"file://{repo}")
    if why:
        return {"name": name, "ok": False, "line": f"not run: {why}", "secs": 0.0}
    source = work / f"{name}.in.ipynb"
    source.write_text(json.dumps(prepared))
    RESULTS.mkdir(parents=True, exist_ok=True)
    dest = RESULTS / f"{name}.ipynb"
    content = work / f"content-{name}"  # Colab's /content: nothing of the repository in it
    content.mkdir()
    start = time.monotonic()
    inner = [venv_python(), __file__, "--execute-one", str(source), str(dest), str(content)]
    done = subprocess.run(
        [*inner, "--timeout", str(timeout)], env=colab_env(), capture_output=True, text=True
    )
    secs = time.monotonic() - start
    if done.returncode != 0 or not Path(str(dest) + ".json").is_file():
        tail = " | ".join((done.stdout + done.stderr).strip().splitlines()[-5:])
        return {"name": name, "ok": False, "line": f"executor failed: {tail}", "secs": secs}
    result = json.loads(Path(str(dest) + ".json").read_text())
    Path(str(dest) + ".json").unlink()
    fresh = json.loads(dest.read_text())
    same, total, skipped, tagged_differ, notes = compare(committed, fresh)
    report = {"name": name, "ok": result["ok"], "secs": secs, "same": same, "total": total}
    report.update(skipped=skipped, tagged_differ=tagged_differ, notes=notes)
    if not result["ok"]:
        report["line"] = f"FAILED at code cell {result.get('cell')}: {result['last_line']}"
        report["traceback"] = result.get("traceback", [])
    versions = installed_versions()
    if "companion" not in versions:
        report["ok"] = False
        report["line"] = "FAILED: the first cell did not install companion"
    changed = {k: (v, versions.get(k)) for k, v in pins.items() if versions.get(k) != v}
    if changed:
        report["ok"] = False
        report["line"] = "FAILED: installing companion replaced Colab's " + ", ".join(
            f"{k} {v} -> {now}" for k, (v, now) in changed.items()
        )
        run([venv_python(), "-m", "pip", "install", "-q", "-r", str(REQUIREMENTS)])
    return report


def print_report(report: dict) -> None:
    status = "ran OK" if report["ok"] else report["line"]
    log(f"{report['name']}: {status} in {report['secs']:.0f} s")
    for line in report.get("traceback", []):
        plain = re.sub(r"\x1b\[[0-9;]*m", "", line).strip().splitlines()
        log(f"    | {plain[-1][:150] if plain else ''}")
    if "total" in report:
        log(
            f"    {report['same']} of {report['total']} text outputs identical to the committed"
            f" ones ({report['skipped']} cells tagged {IGNORE_TAG} not counted;"
            f" {report['tagged_differ']} of them differ)"
        )
        for note in report["notes"]:
            log(f"      {note}")


# -- main ----------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chapters", help="comma-separated, e.g. 01_perceptron,02_backpropagation")
    parser.add_argument("--keep", action="store_true", help="update .colab-venv, not re-create it")
    parser.add_argument("--fresh", action="store_true", help="re-create .colab-venv")
    parser.add_argument("--worktree", action="store_true", help="test uncommitted changes too")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell (600)")
    parser.add_argument("--execute-one", nargs=3, metavar="PATH", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.execute_one:
        execute_one(*args.execute_one, timeout=args.timeout)
        return 0

    wanted = [w.strip().removesuffix(".ipynb") for w in (args.chapters or "").split(",") if w]
    unknown = [w for w in wanted if not (ROOT / "book" / f"{w}.ipynb").is_file()]
    if unknown:
        raise SystemExit(f"colab-check: no such chapter: {', '.join(unknown)}")
    overall = time.monotonic()
    setup_venv(keep=args.keep, fresh=args.fresh)
    pins = pinned()
    reports = []
    with tempfile.TemporaryDirectory(prefix="colab-check-") as tmp:
        work = Path(tmp)
        repo = clone(work, worktree=args.worktree)
        chapters = sorted((repo / "book").glob("[0-9][0-9]_*.ipynb"))
        if wanted:
            uncommitted = [w for w in wanted if not any(p.stem == w for p in chapters)]
            if uncommitted:
                raise SystemExit(f"colab-check: not committed: {', '.join(uncommitted)}")
            chapters = [p for p in chapters if p.stem in wanted]
        chapter_secs = 0.0
        for path in chapters:
            report = check_chapter(path, repo, work, args.timeout, pins)
            print_report(report)
            reports.append(report)
            chapter_secs += report["secs"]
    same = sum(r.get("same", 0) for r in reports)
    total = sum(r.get("total", 0) for r in reports)
    failed = [r["name"] for r in reports if not r["ok"]]
    share = f"{100 * same / total:.1f} %" if total else "n/a"
    chapters_run = f"{len(reports)} chapter{'s' if len(reports) != 1 else ''}"
    log(f"colab-check: {same} of {total} text outputs identical ({share}), {chapters_run}")
    log(
        f"colab-check: chapters ran in {chapter_secs:.0f} s,"
        f" {time.monotonic() - overall:.0f} s in all; notebooks in {RESULTS.relative_to(ROOT)}/"
    )
    if failed:
        log(f"colab-check: FAILED to run on Colab's versions: {', '.join(failed)}")
        return 1
    log("colab-check: every chapter ran on Colab's versions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
