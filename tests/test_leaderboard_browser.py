"""The leaderboard web site in a real browser: Debian's Chromium, driven through chromedriver by selenium, on the
site served from localhost. Pages load without console errors, a header click sorts, every link answers 200.

CI builds the site with ``bench leaderboard --html DIR`` and names it in ``$XTALBENCH_LEADERBOARD_HTML``; without it
the test builds the committed results/ into a temporary folder."""

from __future__ import annotations

import functools
import os
import threading
import urllib.request
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.error import HTTPError
from urllib.parse import urldefrag, urlsplit

import pytest

from harness.leaderboard_html import write_site

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
REPO_RESULTS = Path(__file__).resolve().parents[1] / "results"
# Without the background-networking flags Chromium's own connections are refused by a closed network.
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1400,1000")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"needs Debian's Chromium at {CHROMIUM} "
                                                     "(apt-get install -y chromium chromium-driver)"),
]


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    built = os.environ.get("XTALBENCH_LEADERBOARD_HTML")
    if built:
        return Path(built)
    site = tmp_path_factory.mktemp("site")
    write_site(REPO_RESULTS, site)
    return site


@pytest.fixture(scope="module")
def server(site):
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(site)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    assert CHROMEDRIVER.exists(), f"Chromium is here but {CHROMEDRIVER} is not: apt-get install -y chromium-driver"
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)  # with both paths given selenium's driver manager never runs
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def open_page(browser, url: str) -> None:
    browser.get(url)
    assert browser.execute_script("return document.readyState") == "complete"


def console_errors(browser) -> list[dict]:
    return [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]


def board_pages(site: Path) -> list[str]:
    return sorted(p.name for p in site.glob("*.html"))


def column_values(browser, table, index: int) -> list[str]:
    return browser.execute_script(
        "return Array.from(arguments[0].tBodies[0].rows, r => r.cells[arguments[1]].textContent.trim())",
        table, index)


def first_column(browser, table) -> list[str]:
    return column_values(browser, table, 0)


def test_pages_load_without_console_errors(browser, server, site):
    pages = board_pages(site) + [p.relative_to(site).as_posix() for p in sorted(site.rglob("report.html"))[:3]]
    assert "index.html" in pages and "mp20.html" in pages
    browser.get_log("browser")  # drop anything from before
    for name in pages:
        open_page(browser, server + name)
        assert console_errors(browser) == [], name
        origins = browser.execute_script(
            "return performance.getEntriesByType('resource').map(e => e.name)"
            ".concat([location.href]).filter(u => !u.startsWith('data:'))")
        assert all(urlsplit(url).netloc == urlsplit(server).netloc for url in origins), (name, origins)


def test_clicking_a_header_sorts_the_rows(browser, server):
    open_page(browser, server + "mp20.html")
    table = browser.find_element("css selector", "table.board")
    headers = [th.text for th in table.find_elements("css selector", "thead th")]
    column = headers.index("valid ↑")
    before = list(zip(first_column(browser, table), column_values(browser, table, column), strict=True))
    assert len(before) >= 3 and len({value for _, value in before}) >= 3

    def expected(descending: bool) -> list[str]:
        present = [(label, float(v)) for label, v in before if v != "–"]
        # sorted() is stable, as the page's sort is: ties keep board order
        ordered = sorted(present, key=lambda item: -item[1] if descending else item[1])
        return [label for label, _ in ordered] + [label for label, v in before if v == "–"]

    button = table.find_elements("css selector", "thead th button")[column]
    button.click()
    assert first_column(browser, table) == expected(descending=True)  # higher is better: best first
    assert first_column(browser, table) != [label for label, _ in before]
    button.click()
    assert first_column(browser, table) == expected(descending=False)  # reversed; no value stays last
    th = table.find_elements("css selector", "thead th")[column]
    assert th.get_attribute("aria-sort") == "ascending"

    table.find_elements("css selector", "thead th button")[0].click()  # model names, alphabetically
    labels = first_column(browser, table)
    assert labels == sorted(labels, key=str.lower)
    assert console_errors(browser) == []


def test_every_link_resolves(browser, server, site):
    checked: set[str] = set()
    pages = [server + name for name in board_pages(site)]
    seen_pages: set[str] = set()
    while pages:
        page = pages.pop()
        if page in seen_pages:
            continue
        seen_pages.add(page)
        open_page(browser, page)
        links = browser.execute_script(
            "return Array.from(document.querySelectorAll('a[href], img[src]'), e => e.href || e.src)")
        for link in links:
            url, fragment = urldefrag(link)
            assert urlsplit(url).netloc == urlsplit(server).netloc, f"{page} links outside the site: {link}"
            if fragment and url == urldefrag(page)[0]:
                assert browser.execute_script("return document.getElementById(arguments[0]) !== null", fragment)
                continue
            if url.endswith(".html"):
                pages.append(url)
            if url in checked:
                continue
            try:
                with urllib.request.urlopen(url, timeout=10) as response:
                    assert response.status == 200, url
            except HTTPError as error:
                raise AssertionError(f"{page}: {link} answered {error.code}") from error
            checked.add(url)
    assert len(checked) > 50 and any(url.endswith("report.html") for url in checked)
    assert any(url.endswith(".png") for url in checked) and any(url.endswith("record.json") for url in checked)
