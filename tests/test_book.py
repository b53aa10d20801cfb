"""The book's structure: chapters, Colab setup, API page and pitfalls agree with each other."""

import ast
import inspect
import json
import re
from pathlib import Path

import pytest
import yaml

import companion

ROOT = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
TOC = yaml.safe_load((ROOT / "_toc.yml").read_text())
CHAPTERS = sorted(p.stem for p in (ROOT / "nbsrc").glob("*.py"))


def toc_files():
    files = [TOC["root"]]
    for part in TOC.get("parts", []):
        files += [entry["file"] for entry in part["chapters"]]
    return files


def first_code_cell(name):
    nb = json.loads((ROOT / "book" / f"{name}.ipynb").read_text())
    return next("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")


def test_there_are_chapters_and_each_is_in_the_toc_and_executed():
    assert CHAPTERS, "no chapter sources in nbsrc/"
    for name in CHAPTERS:
        assert f"book/{name}" in toc_files(), f"{name} is missing from _toc.yml"
        assert (ROOT / "book" / f"{name}.ipynb").exists(), f"book/{name}.ipynb: run make notebooks"


def test_every_toc_entry_exists():
    for entry in toc_files():
        assert any((ROOT / f"{entry}{ext}").exists() for ext in (".md", ".ipynb")), entry


@pytest.mark.parametrize("name", CHAPTERS)
def test_colab_cell_installs_from_the_configured_repository(name):
    cell = first_code_cell(name)
    tree = ast.parse(cell)
    urls = [
        node.value.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == "REPOSITORY" for t in node.targets)
    ]
    assert urls == [CONFIG["repository"]["url"]], "the Colab cell must use _config.yml's URL"
    assert "except ImportError" in cell, "install only when companion is not importable"
    assert "seed_everything(0)" in cell
    assert 'use_device("cpu")' in cell, "chapters compute on the CPU unless the reader changes it"


@pytest.mark.parametrize("name", CHAPTERS)
def test_chapter_ends_by_saying_what_executed_it(name):
    nb = json.loads((ROOT / "book" / f"{name}.ipynb").read_text())
    last = [c for c in nb["cells"] if c["cell_type"] == "code"][-1]
    assert "".join(last["source"]) == "print(companion.executed_with())"
    assert "nbval-ignore-output" in last["metadata"].get("tags", [])
    text = "".join("".join(o.get("text", "")) for o in last["outputs"])
    assert text.startswith("Executed with Python "), f"{name}: run make notebooks"


@pytest.mark.parametrize("name", CHAPTERS)
def test_chapter_imports_rather_than_redefines_companion(name):
    source = (ROOT / "nbsrc" / f"{name}.py").read_text()
    defined = set(re.findall(r"^(?:def|class) (\w+)", source, flags=re.M))
    assert not defined & set(companion.__all__), (
        f"{name} re-defines {defined & set(companion.__all__)}"
    )


def test_launch_buttons_and_offline_maths_are_configured():
    assert CONFIG["launch_buttons"]["colab_url"] == "https://colab.research.google.com"
    assert "sphinx-mathjax-offline" in CONFIG["sphinx"]["extra_extensions"]
    assert CONFIG["execute"]["execute_notebooks"] == "off"


def test_every_public_name_is_documented_and_in_the_api_page():
    api = (ROOT / "book" / "api.md").read_text()
    modules = [m for m in vars(companion).values() if inspect.ismodule(m)]
    for name in companion.__all__:
        obj = getattr(companion, name)
        home = next(m.__name__ for m in modules if name in getattr(m, "__all__", ()))
        assert f"automodule:: {home}" in api, f"{home} is not in book/api.md"
        if callable(obj):
            doc = inspect.getdoc(obj) or ""
            assert len(doc.splitlines()) >= 3, f"{name} needs a NumPy docstring"


def test_pitfalls_page_lists_every_pitfall_label():
    labels = set()
    for name in CHAPTERS:
        labels |= set(
            re.findall(
                r"^# \((pitfall-[\w-]+)\)=", (ROOT / "nbsrc" / f"{name}.py").read_text(), flags=re.M
            )
        )
    page = (ROOT / "book" / "pitfalls.md").read_text()
    listed = set(re.findall(r"<(pitfall-[\w-]+)>", page))
    assert labels, "no pitfall labels found"
    assert labels == listed


COLUMN = 79  # characters a code or output block of the rendered book shows without scrolling


def code_cells(name):
    nb = json.loads((ROOT / "book" / f"{name}.ipynb").read_text())
    return [(i, c) for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code"]


def text_outputs(cell):
    for output in cell.get("outputs", []):
        if output["output_type"] == "stream":
            yield "".join(output["text"])
        elif "text/plain" in output.get("data", {}) and "image/png" not in output["data"]:
            yield "".join(output["data"]["text/plain"])
        elif output["output_type"] == "error":
            yield "\n".join(output.get("traceback", []))


@pytest.mark.parametrize("name", CHAPTERS)
def test_every_code_and_output_line_fits_the_rendered_column(name):
    too_wide = []
    for i, cell in code_cells(name):
        for line in "".join(cell["source"]).splitlines():
            if len(line) > COLUMN:
                too_wide.append(f"cell {i} code ({len(line)}): {line}")
        for text in text_outputs(cell):
            for line in text.splitlines():
                if len(line) > COLUMN:
                    too_wide.append(f"cell {i} output ({len(line)}): {line}")
    assert not too_wide, f"{name}: lines wider than {COLUMN}:\n" + "\n".join(too_wide)


@pytest.mark.parametrize("name", CHAPTERS)
def test_every_figure_has_alt_text(name):
    missing = [
        i
        for i, cell in code_cells(name)
        if any("image/png" in o.get("data", {}) for o in cell.get("outputs", []))
        and not str(cell["metadata"].get("mystnb", {}).get("image", {}).get("alt", "")).strip()
    ]
    assert not missing, f"{name}: cells {missing} draw a figure without alt text (mystnb.image.alt)"
