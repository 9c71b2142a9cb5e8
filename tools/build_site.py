#!/usr/bin/env python3
"""Build the course's website from the committed notebooks and README, without running them.

    python tools/build_site.py [--out build/site]      (make site runs it in .venv-site)

The notebooks are committed with the outputs of a full run: those outputs are the pages'
content, so nothing is executed and nothing is downloaded (the theme ships in its PyPI package,
MathJax in site/node_modules from the npm registry). The committed notebooks are never edited:
the build works on copies in OUT/src, where it

* checks that each lesson has its stored outputs (a cleared notebook stops the build, exit 2);
* folds the exercises' solution cells (tagged `solution`; JupyterLab hides them too);
* opens `## Going deeper` with a box saying that the core ends there;
* points the "Open in Colab" badge at a local picture (the link itself is unchanged);
* drops saved widget views, keeping their static output;
* writes the home page's course map, with each lesson's minutes read from its "At a glance";

then runs Jupyter Book with warnings as errors (a link to a missing page fails), and checks the
HTML: every local link leads to a file, and no page loads a script, style or image from the
network. The site is OUT/_build/html; open OUT/_build/html/index.html.
"""
import argparse
import functools
import html.parser
import json
import pathlib
import re
import shutil
import subprocess
import sys
import time
import tomllib
import urllib.parse

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import strip_widgets  # noqa: E402  (the same cleaning as the committed lessons get)

SITE = ROOT / "site"
NOTEBOOKS = ROOT / "notebooks"
COLAB_BADGE = "https://colab.research.google.com/assets/colab-badge.svg"
COLAB_LINK = re.compile(r"\]\((https://colab\.research\.google\.com/github/[^)\s]+)\)")
GOING_DEEPER = "## Going deeper"
MATHJAX = SITE / "node_modules" / "mathjax" / "es5"
# What tex-chtml.js loads: itself, TeX extensions on demand, its fonts, the menu's parts.
MATHJAX_PARTS = ["tex-chtml.js", "input", "output/chtml/fonts/woff-v2", "ui", "a11y"]
# "Time: about N minutes to read the core ...; the core runs in about M minutes ... and the whole
# notebook in about T minutes ..." (the At a glance line of each lesson).
TIME_LINE = re.compile(r"^Time:.*$", re.M)
TIME = re.compile(
    r"about (?P<read>\d+(?:\.\d+)?) minutes to read the core\b.*?"
    r"the core runs in about (?P<core>\d+(?:\.\d+)?) minutes\b.*?"
    r"the whole notebook in about (?P<whole>\d+(?:\.\d+)?) minutes\b"
)

GOING_DEEPER_BOX = """
```{admonition} Going deeper: beyond the core
:class: going-deeper

The core of the lesson ends with the summary above; a class period needs nothing below it.
What follows are measured studies for a reader who wants everything, then the exercises.
```
"""


MARKDOWN_LINK = re.compile(r"(\]\()([^()\s#]+)((?:#[^()\s]*)?\))")


@functools.cache
def repository_url():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]["Repository"]


def link_repository_files(text, folder):
    """A link to a file of the repository that is no page of the site (a module, data) goes to
    the file on the repository's site; links between pages stay for Sphinx to check."""
    def replace(match):
        target = match.group(2)
        if urllib.parse.urlparse(target).scheme or target.startswith("/"):
            return match.group(0)
        path = (folder / urllib.parse.unquote(target)).resolve()
        if not path.is_relative_to(ROOT) or not path.exists():
            return match.group(0)  # Sphinx reports a link to nothing
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith("notebooks/") and rel.endswith(".ipynb"):
            return match.group(0)  # a lesson: a page of the site
        kind = "tree" if path.is_dir() else "blob"
        return f"{match.group(1)}{repository_url()}/{kind}/main/{rel}{match.group(3)}"
    return MARKDOWN_LINK.sub(replace, text)


class BuildError(Exception):
    """A problem the build reports in one message; `status` is the exit status."""

    def __init__(self, message, status=1):
        super().__init__(message)
        self.status = status


def source(cell):
    text = cell.get("source", "")
    return "".join(text) if isinstance(text, list) else text


def lessons():
    found = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    if not found:
        raise BuildError(f"no lessons found in {NOTEBOOKS.relative_to(ROOT)}/ (NN_name.ipynb)")
    return found


def check_outputs(path, notebook):
    """A cleared notebook would make empty pages: stop and say how to get its outputs back."""
    code = [c for c in notebook["cells"] if c["cell_type"] == "code"]
    if code and not any(c.get("outputs") for c in code):
        rel = path.relative_to(ROOT)
        raise BuildError(
            f"{rel} has no stored outputs (it was cleared): the website shows each lesson's "
            f"committed outputs and runs nothing. Restore them with `git checkout -- {rel}`, or "
            f"run the notebook top to bottom (jupyter nbconvert --to notebook --execute --inplace "
            f"{rel}) and build again.",
            status=2,
        )


def read_times(path, notebook):
    """The minutes of a lesson's "At a glance" Time line, or the line itself if it does not parse."""
    for cell in notebook["cells"]:
        text = source(cell)
        if cell["cell_type"] == "markdown" and text.lstrip().startswith("## At a glance"):
            line = TIME_LINE.search(text)
            if not line:
                return None, None
            found = TIME.search(line.group(0))
            if not found:
                return None, line.group(0)
            return {k: float(v) for k, v in found.groupdict().items()}, line.group(0)
    return None, None


def minutes(value):
    return f"{value:g} min"


def lesson_rows(readme):
    """README's lesson table: {notebook file name: (idea, what it measures)}."""
    rows = {}
    for line in readme.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and (m := re.match(r"\[[^\]]*\]\(notebooks/([^)]+\.ipynb)\)", cells[0])):
            rows[m.group(1)] = (cells[1], cells[2])
    return rows


def course_map(entries, readme):
    """The home page's table: lesson, idea, what it measures, read and run minutes."""
    rows = lesson_rows(readme)
    measured = [e for e in entries if e["times"]]
    out = [
        "```{list-table}",
        ":header-rows: 1",
        ":class: course-map",
        ":widths: 14 38 28 10 10",
        "",
        "* - Lesson",
        "  - The idea",
        "  - What it measures",
        "  - Read the core",
        "  - Run: core / whole",
    ]
    for e in entries:
        name = e["path"].name
        if name not in rows:
            raise BuildError(
                f"README.md's lesson table has no row for notebooks/{name}: add one (| [NN title]"
                f"(notebooks/{name}) | idea | measured by | Colab badge |) and build again."
            )
        idea, measures = rows[name]
        if e["times"]:
            t = e["times"]
            read, run = minutes(t["read"]), f"{minutes(t['core'])} / {minutes(t['whole'])}"
        else:
            read = run = '<span class="not-measured">not yet measured</span>'
        out += [f"* - [{e['number']} {e['title']}](notebooks/{name})", f"  - {idea}",
                f"  - {measures}", f"  - {read}", f"  - {run}"]
    out.append("```")
    out.append("")
    out.append(
        "Minutes as each lesson's *At a glance* gives them, measured on a 2-core laptop CPU: the core "
        "is what a class period covers; the whole notebook adds Going deeper and the exercises' "
        "solutions. On a GPU it is faster; `GAN_LESSONS_QUICK=1` runs every cell with few steps and "
        f"little data. {len(measured)} of {len(entries)} lessons measured."
    )
    return "\n".join(out)


def prepare_notebook(path, notebook):
    """The build copy of a lesson: folded solutions, Going deeper marked, local badge, no widgets."""
    strip_widgets.strip(notebook)
    first = source(notebook["cells"][0])
    link = COLAB_LINK.search(first)
    if not link or not urllib.parse.urlparse(link.group(1)).path.endswith("/notebooks/" + path.name):
        raise BuildError(
            f"{path.relative_to(ROOT)}: its first cell needs the Open in Colab badge linking to "
            f".../notebooks/{path.name}; found {link.group(1) if link else 'no Colab link'}"
        )
    deeper = 0
    for cell in notebook["cells"]:
        text = source(cell)
        if cell["cell_type"] == "markdown":
            text = link_repository_files(text.replace(COLAB_BADGE, "../_static/colab-badge.svg"), NOTEBOOKS)
            if text.startswith(GOING_DEEPER) and text[len(GOING_DEEPER):][:1] in ("", "\n"):
                head, _, rest = text.partition("\n")
                text = head + "\n" + GOING_DEEPER_BOX + rest
                deeper += 1
            cell["source"] = text
        elif cell["cell_type"] == "code":
            tags = cell.setdefault("metadata", {}).setdefault("tags", [])
            if "solution" in tags and "hide-cell" not in tags:
                tags.append("hide-cell")  # folded: code and what it printed, one click away
    if deeper > 1:
        raise BuildError(f"{path.relative_to(ROOT)}: {deeper} cells open with {GOING_DEEPER!r}; a lesson has one")
    return notebook


def copy_mathjax(static):
    if not (MATHJAX / "tex-chtml.js").exists():
        raise BuildError(
            f"MathJax is missing ({MATHJAX.relative_to(ROOT)}): install it from the npm registry "
            "with `npm ci --prefix site` (make site does), and build again."
        )
    for part in MATHJAX_PARTS:
        src, dst = MATHJAX / part, static / "mathjax" / part
        dst.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, dst)


def write_toc(src, entries):
    lines = ["# Written by tools/build_site.py: every lesson in notebooks/, then the guide and README.",
             "format: jb-book", "root: intro", "parts:", "  - caption: The lessons", "    chapters:"]
    lines += [f"      - file: notebooks/{e['path'].stem}" for e in entries]
    lines += ["  - caption: For teachers and readers", "    chapters:",
              "      - file: teachers_guide", "      - file: readme", ""]
    (src / "_toc.yml").write_text("\n".join(lines))


class Links(html.parser.HTMLParser):
    """Every href/src of a page, with the tag that holds it."""

    def __init__(self):
        super().__init__()
        self.found = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("href", "src") and value:
                self.found.append((tag, name, value, dict(attrs)))


def check_html(html_dir):
    """Local links lead to files; scripts, styles and images are all local."""
    problems = []
    for page in sorted(html_dir.rglob("*.html")):
        if page.relative_to(html_dir).parts[0] in ("_static", "_sources"):
            continue  # the theme's templates, not pages
        parser = Links()
        parser.feed(page.read_text(encoding="utf-8"))
        rel = page.relative_to(html_dir)
        for tag, name, value, attrs in parser.found:
            url = urllib.parse.urlparse(value)
            remote = url.scheme in ("http", "https") or value.startswith("//")
            loads = (tag in ("script", "img", "iframe", "source", "video", "audio") and name == "src") or (
                tag == "link" and name == "href" and attrs.get("rel") not in ("canonical",))
            if remote and loads:
                problems.append(f"{rel}: <{tag} {name}={value}> loads from the network")
            elif not remote and not url.scheme and url.path:
                target = (page.parent / urllib.parse.unquote(url.path)).resolve()
                if not target.exists():
                    problems.append(f"{rel}: broken link {value} (no {target.relative_to(html_dir.resolve()) if target.is_relative_to(html_dir.resolve()) else target})")
    if problems:
        raise BuildError("the built pages have problems:\n  " + "\n  ".join(problems))


def build(out):
    started = time.monotonic()
    src = out / "src"
    if src.exists():
        shutil.rmtree(src)
    shutil.copytree(SITE, src, ignore=shutil.ignore_patterns("node_modules", "package*.json", "_build"))
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    if f"url: {repository_url()}\n" not in (src / "_config.yml").read_text(encoding="utf-8"):
        raise BuildError(f"site/_config.yml's repository url must be pyproject.toml's Repository, {repository_url()}")

    entries = []
    for path in lessons():
        notebook = json.loads(path.read_text(encoding="utf-8"))
        check_outputs(path, notebook)
        times, line = read_times(path, notebook)
        title = source(notebook["cells"][0]).splitlines()[0].lstrip("# ").strip()
        title = re.sub(r"^Lesson \d+:\s*", "", title)
        entries.append({"path": path, "notebook": notebook, "times": times, "line": line,
                        "number": path.name[:2], "title": title})
    unparsed = [e for e in entries if e["line"] and not e["times"]]
    if unparsed:
        raise BuildError("\n".join(
            f"{e['path'].relative_to(ROOT)}: cannot read the minutes from its At a glance line "
            f"{e['line']!r}; it must read 'Time: about N minutes to read the core ...; the core runs "
            "in about M minutes ... and the whole notebook in about T minutes ...'" for e in unparsed))
    for e in entries:
        if not e["line"]:
            print(f"note: {e['path'].relative_to(ROOT)} is shown as not yet measured (no Time line in its "
                  "At a glance)")

    (src / "notebooks").mkdir()
    for e in entries:
        notebook = prepare_notebook(e["path"], e["notebook"])
        (src / "notebooks" / e["path"].name).write_text(json.dumps(notebook, ensure_ascii=False))
    rest = readme.partition("\n")[2]  # in place of "# gan-lessons", a title that says what the page is
    (src / "readme.md").write_text(
        "# About the course and its package (README)\n"
        + link_repository_files(rest.replace(COLAB_BADGE, "_static/colab-badge.svg"), ROOT),
        encoding="utf-8")
    intro = (src / "intro.md").read_text(encoding="utf-8")
    (src / "intro.md").write_text(intro.replace("<!-- course-map -->", course_map(entries, readme)))
    write_toc(src, entries)

    html_dir = out / "_build" / "html"
    if html_dir.exists():
        shutil.rmtree(html_dir)
    jb = pathlib.Path(sys.executable).parent / "jupyter-book"
    command = [str(jb), "build", str(src), "--path-output", str(out), "--builder", "html",
               "--warningiserror", "--nitpick", "--keep-going", "--quiet"]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        log = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout + result.stderr).strip().splitlines()
        warnings = [l.replace(f"{src}/", "") for l in log if "WARNING" in l or "ERROR" in l] or log[-30:]
        raise BuildError(f"Jupyter Book reported (warnings are errors; pages as copied into {src}):\n  "
                         + "\n  ".join(warnings))
    copy_mathjax(html_dir / "_static")
    check_html(html_dir)
    seconds = time.monotonic() - started
    print(f"built {len(entries)} lessons, the home page, the teacher's guide and README in "
          f"{seconds:.0f} s: {html_dir.relative_to(ROOT) if html_dir.is_relative_to(ROOT) else html_dir}/index.html")
    return html_dir


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=pathlib.Path, default=ROOT / "build" / "site",
                        help="build folder (default: build/site); the site is OUT/_build/html")
    args = parser.parse_args(argv)
    try:
        build(args.out.resolve())
    except BuildError as error:
        print(f"make site: {error}", file=sys.stderr)
        return error.status
    return 0


if __name__ == "__main__":
    sys.exit(main())
