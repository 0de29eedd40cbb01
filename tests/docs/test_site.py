"""The built documentation site works offline: opened from the file system, with nothing fetched from the network.

The site is built once per session (``mkdocs build --strict``, the ``site`` fixture of conftest.py). The checks
read its HTML: every link and asset resolves to a file (``file://`` has no directory index), nothing is loaded
from another host, the search index is inlined into a script, and every formula is valid KaTeX (rendered by the
shipped KaTeX in Node.js when Node.js is installed). With Chromium installed, a headless browser opens pages
from the file system and checks that the formulas render and that search answers a query.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
KATEX = DOCS / "assets" / "katex"
# pages whose formulas this suite owns: no TeX may show outside a rendered formula there
MATH_PAGES = ["math.html", "migration.html"]

pytestmark = pytest.mark.slow


class Page(HTMLParser):
    """Collects a page's URLs (with the tag that holds them), element ids, formulas and visible prose."""

    URL_ATTRIBUTES = {"href", "src", "srcset", "poster", "data"}
    HIDDEN = {"code", "pre", "script", "style", "svg", "kbd"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.urls: list[tuple[str, str]] = []
        self.ids: set[str] = set()
        self.formulas: list[str] = []
        self.prose: list[str] = []
        self._stack: list[tuple[str, bool]] = []  # (tag, opened a formula)
        self._hidden = 0
        self._formula: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        for name, value in attrs:
            if name in self.URL_ATTRIBUTES and value:
                self.urls.append((tag, value))
            if name == "id" and value:
                self.ids.add(value)
        if tag in {"meta", "link", "img", "input", "br", "hr", "source"}:
            return  # void elements have no end tag
        opens_formula = "arithmatex" in (attributes.get("class") or "").split() and self._formula is None
        if opens_formula:
            self._formula = []
        if tag in self.HIDDEN:
            self._hidden += 1
        self._stack.append((tag, opens_formula))

    def handle_endtag(self, tag):
        while self._stack:
            open_tag, opened_formula = self._stack.pop()
            if open_tag in self.HIDDEN:
                self._hidden -= 1
            if opened_formula:
                self.formulas.append("".join(self._formula))
                self._formula = None
            if open_tag == tag:
                break

    def handle_data(self, data):
        if self._formula is not None:
            self._formula.append(data)
        elif not self._hidden:
            self.prose.append(data)


def parse(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def html_pages(site: Path) -> list[Path]:
    return sorted(site.rglob("*.html"))


def is_external(url: str) -> bool:
    return bool(urlsplit(url).scheme) or url.startswith("//")


def test_every_link_and_asset_resolves_to_a_file_from_the_file_system(site):
    broken, fragments_missing = [], []
    ids = {path: parse(path).ids for path in html_pages(site)}
    for path in html_pages(site):
        if path.name == "404.html":
            continue  # served by a web server for missing URLs, with root-relative links; never opened as a file
        for tag, url in parse(path).urls:
            if is_external(url) or tag == "link" and url.endswith(".xml"):
                continue
            parts = urlsplit(url)
            target = (path.parent / unquote(parts.path)).resolve() if parts.path else path
            if not target.is_file():  # a directory URL would show a folder listing under file://
                broken.append(f"{path.relative_to(site)}: {url}")
            elif parts.fragment and target.suffix == ".html" and unquote(parts.fragment) not in ids[target]:
                fragments_missing.append(f"{path.relative_to(site)}: {url}")
    assert not broken, broken
    assert not fragments_missing, fragments_missing


def test_pages_link_to_html_files_not_directories(site):
    home = parse(site / "index.html")
    nav = [url for tag, url in home.urls if tag == "a" and not is_external(url) and not url.startswith("#")]
    assert "math.html" in nav and "migration.html" in nav and "tutorials/norse.html" in nav


def test_nothing_is_loaded_from_another_host(site):
    """Scripts, stylesheets, fonts, images and icons all come with the site: no CDN, no Google Fonts."""
    loaded_tags = {"script", "link", "img", "iframe", "source", "video", "audio", "embed", "object"}
    external = []
    for path in html_pages(site):
        for tag, url in parse(path).urls:
            if tag in loaded_tags and is_external(url) and not url.startswith("data:"):
                external.append(f"{path.relative_to(site)}: <{tag}> {url}")
    for css in site.rglob("*.css"):
        for url in re.findall(r"url\(\s*['\"]?([^'\")]+)", css.read_text(encoding="utf-8")):
            if is_external(url) and not url.startswith("data:"):
                external.append(f"{css.relative_to(site)}: url({url})")
    assert not external, external
    home = (site / "index.html").read_text(encoding="utf-8")
    assert "fonts.googleapis.com" not in home and "unpkg.com" not in home
    assert 'src="assets/iframe-worker/shim.js"' in home  # the offline plugin's worker shim, shipped


def test_search_index_is_inlined_into_a_script(site):
    script = (site / "search" / "search_index.js").read_text(encoding="utf-8")
    assert script.startswith("var __index = ")
    index = json.loads(script.removeprefix("var __index = "))
    locations = {document["location"] for document in index["docs"]}
    assert {"math.html", "migration.html", "results.html"} <= locations
    migration = " ".join(d["text"] for d in index["docs"] if d["location"].startswith("migration.html"))
    assert "SpikeRate" in migration and "voltage readout" in " ".join(d["title"] for d in index["docs"])


def test_formulas_are_marked_for_katex_and_no_tex_shows_outside_them(site):
    for name in MATH_PAGES:
        page = parse(site / name)
        assert len(page.formulas) > 50, name
        for formula in page.formulas:
            assert re.fullmatch(r"\\\((.+)\\\)|\\\[(.+)\\\]", formula.strip(), re.DOTALL), (name, formula)
        prose = "".join(page.prose)
        leftovers = re.findall(r"\$|\\[A-Za-z]+|\\[()\[\]]", prose)
        assert not leftovers, (name, leftovers)


def katex_sources(site: Path) -> list[dict]:
    formulas = []
    for path in html_pages(site):
        for formula in parse(path).formulas:
            text = html.unescape(formula).strip()
            formulas.append({"page": str(path.relative_to(site)), "display": text.startswith("\\["), "tex": text[2:-2]})
    return formulas


KATEX_CHECK = r"""
const katex = require(process.argv[1]);  // node -e: argv[1] is the first argument
const formulas = JSON.parse(require("fs").readFileSync(0, "utf-8"));
const errors = [];
for (const f of formulas) {
  try { katex.renderToString(f.tex, { displayMode: f.display, throwOnError: true }); }
  catch (e) { errors.push(f.page + ": " + f.tex + " -> " + e.message); }
}
console.log(JSON.stringify({ version: katex.version, rendered: formulas.length - errors.length, errors }));
"""


def test_every_formula_renders_with_the_shipped_katex(site):
    node = shutil.which("node")
    if node is None:
        pytest.skip("needs Node.js to run KaTeX")
    formulas = katex_sources(site)
    assert len(formulas) > 200
    result = subprocess.run(
        [node, "-e", KATEX_CHECK, str(KATEX / "katex.min.js")],
        input=json.dumps(formulas),
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    report = json.loads(result.stdout)
    assert report["errors"] == []
    assert report["rendered"] == len(formulas)
    assert report["version"] == "0.19.1"


def test_shipped_assets_are_the_recorded_upstream_files():
    record = (KATEX / "SOURCE.txt").read_text(encoding="utf-8")
    recorded = dict((name, digest) for digest, name in re.findall(r"^\s+([0-9a-f]{64})\s+\./(\S+)$", record, re.M))
    shipped = {str(path.relative_to(KATEX)) for path in KATEX.rglob("*") if path.is_file()}
    assert set(recorded) == shipped - {"LICENSE", "SOURCE.txt"}
    for name, digest in recorded.items():
        assert hashlib.sha256((KATEX / name).read_bytes()).hexdigest() == digest, name
    assert 'version:"0.19.1"' in (KATEX / "katex.min.js").read_text(encoding="utf-8").replace(" ", "")
    # every font the stylesheet asks for first (woff2) is shipped; the woff/ttf fallbacks are not needed
    css = (KATEX / "katex.min.css").read_text(encoding="utf-8")
    woff2 = set(re.findall(r"url\((fonts/[^)]+\.woff2)\)", css))
    assert len(woff2) == 20 and all((KATEX / font).is_file() for font in woff2)
    shim = DOCS / "assets" / "iframe-worker" / "shim.js"
    shim_record = (shim.parent / "SOURCE.txt").read_text(encoding="utf-8")
    assert hashlib.sha256(shim.read_bytes()).hexdigest() in shim_record
    assert (KATEX / "LICENSE").is_file() and (shim.parent / "LICENSE").is_file()


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    pytest.skip("needs Chromium for the browser checks")


def dump_dom(url: str, tmp_path: Path, budget_ms: int) -> str:
    """The page's DOM after its scripts ran, in headless Chromium with a fresh profile and no network use."""
    profile = tmp_path / f"profile-{len(list(tmp_path.iterdir()))}"
    profile.mkdir()
    command = [
        chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        f"--virtual-time-budget={budget_ms}",
        "--dump-dom",
        url,
    ]
    return subprocess.run(command, capture_output=True, text=True, check=True, timeout=120).stdout


def test_browser_renders_the_formulas_from_the_file_system(site, tmp_path):
    for name in MATH_PAGES:
        dom = dump_dom((site / name).as_uri(), tmp_path, 5000)
        marked = dom.count('class="arithmatex"')
        assert marked > 50, name
        assert dom.count('class="katex"') == marked, name  # one KaTeX rendering per formula
        assert "katex-error" not in dom, name
        page = Page()
        page.feed(dom)
        assert not [f for f in page.formulas if f.strip().startswith(("\\(", "\\["))], name  # none left as source


def test_browser_search_answers_a_query_from_the_file_system(site, tmp_path):
    dom = dump_dom((site / "index.html").as_uri() + "?q=smoothing", tmp_path, 10000)
    match = re.search(r'class="md-search-result__meta">(\d+) matching documents<', dom)
    assert match and int(match[1]) >= 5, "search gave no results"
    results = dom[dom.index('class="md-search-result__list"') :]
    assert results.count('class="md-search-result__item"') >= 5
    # the previews quote formulas from the index as source text; katex-init.js renders them
    assert results.count('class="katex"') >= 10
    assert "\\(" not in results
