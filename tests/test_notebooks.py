"""Static checks of the committed notebooks (nbval executes them separately)."""

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
REPOSITORY = re.search(r'^Repository = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M).group(1)


def _cells(path):
    return json.loads(path.read_text())["cells"]


def _source(cell):
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def test_there_are_lessons():
    assert NOTEBOOKS, "no numbered notebooks found in notebooks/"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_the_cell_under_the_title_installs_from_the_one_repository_address(path):
    first = _source(_cells(path)[1])
    assert "find_spec(\"gan_lessons\")" in first
    urls = re.findall(r"https://[^\s\"']+", first)
    assert urls == [REPOSITORY], f"{path.name} installs from {urls}, pyproject says {REPOSITORY}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_outputs_are_clean_and_small(path):
    assert path.stat().st_size < 2.5e6, f"{path.name} is {path.stat().st_size / 1e6:.1f} MB"
    cells = _cells(path)
    code = [c for c in cells if c["cell_type"] == "code"]
    assert all(c.get("execution_count") for c in code), f"{path.name} has cells that were not run"
    for cell in code:
        for out in cell.get("outputs", []):
            assert out["output_type"] != "error", f"{path.name}: error output"
            assert out.get("name") != "stderr", f"{path.name}: stderr output: {_source({'source': out.get('text', '')})[:200]}"
            text = _source({"source": out.get("text", "")})
            assert "Warning" not in text and "E0000" not in text, f"{path.name}: {text[:200]}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_unfinished_text(path):
    for cell in _cells(path):
        assert "TODO" not in _source(cell), f"{path.name}: unfinished text: {_source(cell)[:80]}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_lesson_starts_with_a_title_and_imports_the_package_first(path):
    cells = _cells(path)
    assert cells[0]["cell_type"] == "markdown" and _source(cells[0]).startswith("# Lesson")
    first_import = next(_source(c) for c in cells[2:] if c["cell_type"] == "code" and "import" in _source(c))
    lines = [line for line in first_import.splitlines() if line.strip() and not line.startswith("#")]
    assert lines[0].startswith("import gan_lessons"), "import gan_lessons before TensorFlow"


def colab_link(path):
    """The Colab address of a lesson, built from the one repository address."""
    colab = REPOSITORY.replace("https://github.com/", "https://colab.research.google.com/github/")
    return f"{colab}/blob/main/notebooks/{path.name}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_lesson_opens_in_colab_from_its_title_and_from_readme(path):
    assert REPOSITORY.startswith("https://github.com/")
    badge = f"[![Open in Colab](https://colab.research.google.com/assets/colab-badge.svg)]({colab_link(path)})"
    assert badge in _source(_cells(path)[0]).splitlines()[:4], f"{path.name}: no Colab badge under the title"
    readme = (ROOT / "README.md").read_text()
    row = next(line for line in readme.splitlines() if f"(notebooks/{path.name})" in line)
    assert badge in row, f"README's row for {path.name} has no Colab badge"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_widget_state_is_committed(path):
    """Widgets live in a kernel; saved, they are broken boxes for readers without one
    (tools/strip_widgets.py removes them and keeps the static outputs)."""
    notebook = json.loads(path.read_text())
    assert "widgets" not in notebook.get("metadata", {}), f"{path.name}: run tools/strip_widgets.py"
    for cell in notebook["cells"]:
        for out in cell.get("outputs", []):
            assert "application/vnd.jupyter.widget-view+json" not in out.get("data", {}), \
                f"{path.name}: a widget view is saved; run tools/strip_widgets.py"


def _two_part(path):
    return any(c["cell_type"] == "markdown" and _source(c).startswith("## Going deeper") for c in _cells(path))


@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if _two_part(p)], ids=lambda p: p.name)
def test_every_exercise_has_a_solution_cell_that_ran_and_printed(path):
    """Each exercise ("**N. ...**" after "## Exercises") is followed by a hidden code cell tagged
    "solution", run with the notebook (so it cannot rot), whose printed output the answer quotes."""
    cells = _cells(path)
    start = next(i for i, c in enumerate(cells) if c["cell_type"] == "markdown" and _source(c).startswith("## Exercises"))
    questions = [n for c in cells[start:] if c["cell_type"] == "markdown"
                 for n in re.findall(r"^\*\*(\d+)\.", _source(c), re.M)]
    solutions = [c for c in cells[start:] if c["cell_type"] == "code" and "solution" in c["metadata"].get("tags", [])]
    assert questions, f"{path.name}: no exercises"
    assert len(solutions) == len(questions), f"{path.name}: {len(questions)} exercises, {len(solutions)} solution cells"
    for cell in solutions:
        assert cell["metadata"].get("jupyter", {}).get("source_hidden"), f"{path.name}: a solution cell is not hidden"
        assert any(o.get("name") == "stdout" for o in cell.get("outputs", [])), f"{path.name}: a solution printed nothing"
