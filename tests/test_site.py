"""The course's website, checked in a real browser (make test-site, in .venv-site).

Builds the site (tools/build_site.py), serves it on 127.0.0.1 and opens every page in headless
Chromium (Debian's chromium and chromium-driver, installed with apt-get when missing): each page
loads with no console error, its maths is typeset by the local MathJax (no raw $...$ left), every
image loads, each lesson page's Colab link names that lesson's notebook, Going deeper is marked
and the solutions and answers are folded; search finds a lesson. A screenshot of lesson 01 is
written to build/site/screenshot-lesson-01.png. A last test breaks a copy of a page (a script
error, raw maths, a missing image) and checks that the same checks catch all three.
"""
import functools
import http.server
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import threading

import pytest

webdriver = pytest.importorskip("selenium.webdriver", reason="the site's tests run in .venv-site (make test-site)")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "build" / "site"
HTML = OUT / "_build" / "html"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
RAW_MATH = re.compile(r"\$[^$\s][^$\n]*\$|\\\(|\\\[")


def ensure_chromium():
    """Debian's chromium and its driver (same version); installed once with apt-get."""
    if os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER):
        return
    if os.geteuid() != 0:
        pytest.fail("the site's browser test needs Debian's chromium and chromium-driver: "
                    "sudo apt-get install chromium chromium-driver")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium",
                    "chromium-driver"], check=True, env=env, stdout=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def site():
    sys.path.insert(0, str(ROOT / "tools"))
    import build_site

    assert build_site.main(["--out", str(OUT)]) == 0, "make site failed (its message is above)"
    return HTML


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def serve(folder):
    handler = functools.partial(QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope="module")
def browser():
    ensure_chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--window-size=1280,1600", "--hide-scrollbars"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # The driver from Debian, never one fetched by Selenium Manager.
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(CHROMEDRIVER))
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def server(site):
    httpd = serve(site)
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def pages(html):
    """Every page a reader can open (index.html only redirects to the home page)."""
    found = [p.relative_to(html).as_posix() for p in sorted(html.rglob("*.html"))
             if p.relative_to(html).parts[0] not in ("_static", "_sources")]
    return [p for p in found if p != "index.html"]


def check_page(driver, url):
    """What a reader of one page would notice: a list of problems, empty when the page is right."""
    driver.get_log("browser")  # drop what earlier pages left
    driver.get(url)
    problems = []
    has_math = driver.execute_script("return document.querySelector('.math') !== null")
    if has_math:
        try:
            WebDriverWait(driver, 30).until(lambda d: d.execute_script(
                "return !!(window.MathJax && MathJax.startup && MathJax.startup.promise)"))
            state = driver.execute_async_script(
                "const done = arguments[arguments.length - 1];"
                "MathJax.startup.promise.then(() => done('ok'), e => done(String(e)));")
        except Exception as error:  # noqa: BLE001  (any failure here is the page's problem)
            state = f"MathJax never started ({type(error).__name__})"
        if state != "ok":
            problems.append(f"MathJax: {state}")
        untyped = driver.execute_script(
            "return [...document.querySelectorAll('.math')].filter(m => !m.querySelector('mjx-container'))"
            ".map(m => m.textContent.slice(0, 60))")
        if untyped:
            problems.append(f"{len(untyped)} maths not typeset, e.g. {untyped[0]!r}")
        errors = driver.execute_script("return [...document.querySelectorAll('mjx-merror')].map(e => e.textContent)")
        if errors:
            problems.append(f"MathJax errors: {errors[:3]}")
    # The page's text as a reader sees it, less code, outputs and typeset maths.
    text = driver.execute_script(
        "const main = (document.querySelector('article') || document.body).cloneNode(true);"
        "main.querySelectorAll('pre, code, mjx-container, script, style, .cell_output, .output')"
        ".forEach(e => e.remove());"
        "return main.textContent;")
    raw = RAW_MATH.findall(text)
    if raw:
        problems.append(f"raw maths in the text: {raw[:3]}")
    WebDriverWait(driver, 30).until(lambda d: d.execute_script(
        "return [...document.images].every(i => i.complete)"))
    broken = driver.execute_script(
        "return [...document.images].filter(i => !(i.naturalWidth > 0)).map(i => i.getAttribute('src'))")
    if broken:
        problems.append(f"images that do not load: {broken[:3]}")
    errors = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    if errors:
        problems.append(f"console errors: {errors[:3]}")
    return problems


def test_every_page_in_the_browser(site, server, browser):
    found = pages(site)
    lessons = [p for p in found if p.startswith("notebooks/")]
    assert len(lessons) == len(list((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")))
    assert {"intro.html", "teachers_guide.html", "readme.html", "search.html"} <= set(found)
    problems = {}
    for page in found:
        page_problems = check_page(browser, f"{server}/{page}")
        if page in lessons:
            page_problems += check_lesson(browser, page)
        if page_problems:
            problems[page] = page_problems
        if page == "notebooks/01_mlp_gan.html":
            browser.save_screenshot(str(OUT / "screenshot-lesson-01.png"))
    assert not problems, json.dumps(problems, indent=1)


def check_lesson(driver, page):
    """A lesson page: its Colab badge names its notebook; Going deeper marked; answers folded."""
    problems = []
    notebook = pathlib.PurePosixPath(page).stem + ".ipynb"
    links = driver.execute_script(
        "return [...document.querySelectorAll('article a[href*=\"colab.research.google.com\"]')]"
        ".map(a => [a.href, !!a.querySelector('img') && a.querySelector('img').naturalWidth > 0])")
    if not links:
        problems.append("no Open in Colab link")
    for href, shown in links:
        if not href.endswith("/notebooks/" + notebook):
            problems.append(f"the Colab link {href} does not open {notebook}")
        if not shown:
            problems.append("the Colab badge is not shown")
    source = json.loads((ROOT / "notebooks" / notebook).read_text())
    has_deeper = any(c["cell_type"] == "markdown" and "".join(c["source"]).startswith("## Going deeper")
                     for c in source["cells"])
    marked = driver.find_elements(By.CSS_SELECTOR, ".admonition.going-deeper")
    if has_deeper and len(marked) != 1:
        problems.append(f"Going deeper is marked {len(marked)} times, not once")
    solutions = sum("solution" in c.get("metadata", {}).get("tags", []) for c in source["cells"])
    folded = driver.execute_script(
        "return [...document.querySelectorAll('.cell.tag_solution')]"
        ".filter(c => { const d = c.querySelector('details'); return d && !d.open; }).length")
    if folded != solutions:
        problems.append(f"{solutions} solution cells, {folded} folded")
    opened = driver.execute_script(
        "return [...document.querySelectorAll('article details')].filter(d => d.open).length")
    if opened:
        problems.append(f"{opened} answers shown unfolded")
    return problems


def test_search_finds_a_lesson(server, browser):
    browser.get(f"{server}/search.html?q=discriminator")
    WebDriverWait(browser, 30).until(lambda d: d.execute_script(
        "return document.querySelectorAll('#search-results li').length > 0"))
    hits = browser.execute_script(
        "return [...document.querySelectorAll('#search-results li a')].map(a => a.getAttribute('href'))")
    assert any(h.startswith("notebooks/") for h in hits), hits


def test_the_checks_catch_a_broken_page(site, browser, tmp_path):
    """A copy of lesson 01's page with a script error, raw maths and a missing image fails."""
    broken = tmp_path / "html"
    shutil.copytree(site, broken)
    page = broken / "notebooks" / "01_mlp_gan.html"
    text = page.read_text()
    fault = ('<p>Raw maths: $D(x) = 1$</p><img src="missing.png" alt="missing">'
             '<script>throw new Error("a broken page")</script>')
    page.write_text(text.replace('<section id="at-a-glance">', fault + '<section id="at-a-glance">', 1))
    httpd = serve(broken)
    try:
        problems = " | ".join(check_page(browser, f"http://127.0.0.1:{httpd.server_address[1]}/notebooks/01_mlp_gan.html"))
    finally:
        httpd.shutdown()
    assert "raw maths in the text" in problems and "$D(x) = 1$" in problems, problems
    assert "images that do not load: ['missing.png']" in problems, problems
    assert "a broken page" in problems, problems
