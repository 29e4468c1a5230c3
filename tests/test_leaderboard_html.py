"""The leaderboard web site: the same rows as the markdown boards, published rows marked, text escaped, and every
relative link resolving to a file inside the output folder."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from harness import leaderboard
from harness.leaderboard_html import inline, write_site

try:
    from test_leaderboard import bench_leaderboard, tables
    from test_leaderboard_records import external_record, make_record, write_run
except ImportError:  # tests/ imported as a package
    from tests.test_leaderboard import bench_leaderboard, tables
    from tests.test_leaderboard_records import external_record, make_record, write_run

REPO_RESULTS = Path(__file__).resolve().parents[1] / "results"
PNG = b"\x89PNG\r\n\x1a\n"  # the site copies plots, it never reads them


class PageParser(HTMLParser):
    """The board tables (rows of ``(tr class, cell texts)``), every href/src, and every id of one page."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tables: list[list[tuple[str, list[str]]]] = []
        self.links: list[str] = []
        self.ids: set[str] = set()
        self.scripts: list[dict[str, str]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        for name in ("href", "src"):
            if name in attrs:
                self.links.append(attrs[name])
        if tag == "script" or (tag == "link" and attrs.get("rel") == "stylesheet"):
            self.scripts.append(attrs)
        if tag == "table" and attrs.get("class") == "board":
            self.tables.append([])
        elif tag == "tr" and self.tables and "data-order" in attrs:
            self.tables[-1].append((attrs.get("class", ""), []))
        elif tag == "tr" and self.tables:
            self.tables[-1].append(("header", []))
        elif tag in ("th", "td") and self.tables:
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("th", "td") and self._cell is not None:
            self.tables[-1][-1][1].append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def parse(path: Path) -> PageParser:
    parser = PageParser()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def plain(markdown_cell: str) -> str:
    """A markdown cell as the page shows it: links as their text, no emphasis or code marks."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", markdown_cell.replace("\\|", "|"))
    return " ".join(text.replace("*", "").replace("`", "").split())


def assert_same_rows(results: Path, site: Path) -> None:
    for path, markdown in leaderboard.render_all(results, site / "md").items():
        page = parse(site / f"{path.stem}.html")
        expected = [[[plain(cell) for cell in row] for row in table] for table in tables(markdown, tasks=True)]
        shown = [[[text.replace("*", "") for text in cells] for _, cells in rows] for rows in page.tables]
        assert shown == expected and len(expected) >= 2, path.stem


def assert_links_resolve(site: Path) -> int:
    """Every href/src of every page is relative and names a file inside ``site`` (or an id on its page)."""
    checked = 0
    root = site.resolve()
    for page_path in sorted(site.rglob("*.html")):
        page = parse(page_path)
        for link in page.links:
            if link.startswith("data:"):
                continue
            parts = urlsplit(link)
            assert not parts.scheme and not parts.netloc, f"{page_path}: {link} is not relative"
            if not parts.path:
                assert parts.fragment in page.ids, f"{page_path}: no id {parts.fragment!r}"
                continue
            target = (page_path.parent / unquote(parts.path)).resolve()
            assert target.is_relative_to(root) and target.is_file(), f"{page_path}: {link} does not resolve"
            checked += 1
        assert all(not script.get("src") for script in page.scripts), page_path  # inline only
    return checked


@pytest.fixture
def results(tmp_path):
    results = tmp_path / "results"
    trainset = write_run(results, make_record("trainset", tier="full",
                                              metrics={"valid": 0.95, "wdist_density": 0.3}))
    (trainset.parent / "report.md").write_text(
        "# Report: trainset\n\nFrom [record.json](record.json), not [elsewhere](../../x.json).\n\n"
        "| metric | value |\n|---|---|\n| valid ↑ | 0.9500 |\n\n- one\n- two\n\n![Density](density.png)\n")
    for name in ("density.png", "spacegroup.png"):
        (trainset.parent / name).write_bytes(PNG)
    write_run(results, make_record("random", tier="full", metrics={"valid": 0.60, "wdist_density": 0.1}))
    write_run(results, make_record("m<b>&\"q", dataset="perov5", metrics={"valid": 0.5}))
    write_run(results, external_record("llm", model="LLM <i>", status="filtered", n_samples=300,
                                       caveats=("<script>alert(1)</script> & `code`",), metrics={"valid": 0.99}))
    return results


def test_pages_show_the_markdown_boards_rows_and_columns(results, tmp_path):
    site = tmp_path / "site"
    write_site(results, site)
    assert sorted(p.name for p in site.glob("*.html")) == ["index.html", "mp20.html", "perov5.html"]
    assert_same_rows(results, site)


def test_published_rows_are_marked(results, tmp_path):
    site = tmp_path / "site"
    write_site(results, site)
    for dataset in ("mp20", "perov5"):
        rows = [row for table in parse(site / f"{dataset}.html").tables for row in table if row[0] != "header"]
        published = {cells[0] for kind, cells in rows if kind == "published"}
        expected = {f"{p['method']} (published)" for p in (*leaderboard.published_rows(),
                                                            *leaderboard.published_task_rows())
                    if p["dataset"] == dataset}
        assert published == expected and expected
        assert all(kind != "published" for kind, cells in rows if not cells[0].endswith("(published)"))
    assert 'class="external"' in (site / "mp20.html").read_text()


def test_every_relative_link_resolves_inside_the_folder(results, tmp_path):
    site = tmp_path / "site"
    write_site(results, site)
    assert assert_links_resolve(site) > 10
    run = site / "results" / "mp20" / "trainset" / "run-a"
    assert sorted(p.name for p in run.iterdir()) == ["density.png", "record.json", "report.html", "report.md",
                                                    "spacegroup.png"]
    page = (run / "report.html").read_text()
    assert '<a href="record.json">record.json</a>' in page and "elsewhere" in page and "../../x.json" not in page
    assert '<img src="density.png"' in page and "<li>two</li>" in page
    board = (site / "mp20.html").read_text()
    assert 'href="#plots-trainset"' in board and 'id="plots-trainset"' in board
    assert "plots-random" not in board  # no plots beside that record


def test_text_is_escaped_everywhere(results, tmp_path):
    site = tmp_path / "site"
    write_site(results, site)
    mp20, perov5 = (site / "mp20.html").read_text(), (site / "perov5.html").read_text()
    assert "<script>alert" not in mp20 and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; <code>code</code>" in mp20
    assert "LLM &lt;i&gt;" in mp20 and "<i>" not in mp20
    assert "m&lt;b&gt;&amp;&quot;q" in perov5 and "m%3Cb%3E%26%22q/run-a/record.json" in perov5
    assert (inline("a <b> *(x)* **y** `<z>`")
            == "a &lt;b&gt; <em>(x)</em> <strong>y</strong> <code>&lt;z&gt;</code>")
    assert inline("2 * 3 * 4") == "2 * 3 * 4"


def test_committed_results_give_the_committed_boards_rows(tmp_path):
    site = tmp_path / "site"
    write_site(REPO_RESULTS, site)
    assert_same_rows(REPO_RESULTS, site)
    assert assert_links_resolve(site) > 50
    first = {p: p.read_bytes() for p in site.rglob("*.html")}
    write_site(REPO_RESULTS, site)
    assert {p: p.read_bytes() for p in site.rglob("*.html")} == first  # deterministic, no render time


def test_cli_writes_the_site_and_leaves_the_markdown_alone(results, tmp_path, capsys):
    out, site = tmp_path / "lb", tmp_path / "site"
    assert bench_leaderboard("--results", str(results), "--out", str(out), "--html", str(site)) == 0
    assert (site / "index.html").exists() and not out.exists()
    assert f"open {site / 'index.html'}" in capsys.readouterr().out
    index = parse(site / "index.html")
    assert {"mp20.html", "perov5.html"} <= set(index.links)
    assert bench_leaderboard("--results", str(results), "--out", str(out), "--html", str(site), "--check") == 1
