"""The leaderboards as a static web site: one sortable page per dataset and an index, from the same boards as the
markdown files, with copies of each row's record, report and plots so the folder works from disk or any server."""

from __future__ import annotations

import html
import os
import re
import shutil
from pathlib import Path
from urllib.parse import quote

from harness.io import atomic_write_text
from harness.leaderboard import (
    MISSING,
    REPORT_NAME,
    TABLE_PARTS,
    Board,
    Row,
    Section,
    TaskTable,
    build_boards,
    table_cells,
)
from harness.protocol import METRIC_SPECS, PROTOCOL_VERSION, MetricSpec
from harness.records import RECORD_NAME
from harness.report import PLOT_NAMES

INDEX_NAME = "index.html"
REPORT_PAGE = "report.html"
RUNS_DIR = "results"  # the copied run folders keep their place under results/
PLOT_CAPTIONS = {"spacegroup": "space groups", "density": "density", "num_elems": "elements per structure",
                 "ehull": "E_hull of the relaxed subset"}
HEADER_TYPES = {c.title: ("number", c.better or "") for c in METRIC_SPECS} | {"peak GB": ("number", "")}

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 1500px; padding: 0 1.5em 3em; color: #222; }
nav { padding: .8em 0; border-bottom: 1px solid #ddd; } nav a { margin-right: 1em; }
h1 { margin: .6em 0 .3em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #eee; }
p { max-width: 75em; } code { background: #f3f3f3; padding: 0 .25em; border-radius: 3px; }
.scroll { overflow-x: auto; margin: .5em 0 1.2em; }
table { border-collapse: collapse; } th, td { padding: .25em .55em; border-bottom: 1px solid #e4e4e4; }
td { white-space: nowrap; text-align: right; font-variant-numeric: tabular-nums; }
td.text { text-align: left; } td.notes { white-space: normal; min-width: 22em; max-width: 40em; }
tbody th { text-align: left; min-width: 8em; max-width: 16em; font-weight: 600; position: sticky; left: 0; background: #fff; }
thead th { position: sticky; top: 0; background: #f6f6f6; }
thead button { font: inherit; font-weight: 600; border: 0; background: none; cursor: pointer; padding: 0; }
thead th[aria-sort=ascending] button::after { content: " ▲"; } thead th[aria-sort=descending] button::after { content: " ▼"; }
td.best { background: #e3f4e3; }
tr.published, tr.published th { background: #fff4d6; font-style: italic; }
tr.published th { border-left: 4px solid #d9a400; }
tr.external th { border-left: 4px solid #7570b3; } tr.dataset th { border-left: 4px solid #888; }
.key span { padding: .1em .5em; margin-right: .6em; }
.key .published { background: #fff4d6; border-left: 4px solid #d9a400; font-style: italic; }
.key .external { border-left: 4px solid #7570b3; } .key .best { background: #e3f4e3; }
.plots figure { display: inline-block; margin: 0 1em 1em 0; } .plots img { width: 420px; border: 1px solid #ddd; }
.report img { max-width: 100%; border: 1px solid #ddd; }
"""

# Sorts a table's body rows by the clicked column; `–` (no value) stays last either way, ties keep board order.
SCRIPT = """
document.querySelectorAll("table.board").forEach(function (table) {
  var heads = table.tHead.rows[0].cells;
  function key(cell, type) {
    var text = cell.textContent.trim();
    if (text === "" || text === "\\u2013") return null;
    return type === "number" ? parseFloat(text) : text.toLowerCase();
  }
  Array.prototype.forEach.call(heads, function (th, column) {
    th.querySelector("button").addEventListener("click", function () {
      var type = th.dataset.type, first = type === "number" && th.dataset.better !== "min" ? "descending" : "ascending";
      var state = th.getAttribute("aria-sort") === first ? (first === "ascending" ? "descending" : "ascending") : first;
      Array.prototype.forEach.call(heads, function (other) { other.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", state);
      var sign = state === "ascending" ? 1 : -1, body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = key(a.cells[column], type), y = key(b.cells[column], type), order = a.dataset.order - b.dataset.order;
        if (x === null || y === null) return x === y ? order : (x === null ? 1 : -1);
        var c = type === "number" ? x - y : (x < y ? -1 : x > y ? 1 : 0);
        return c !== 0 ? sign * c : order;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
"""


def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def href(path: str) -> str:
    """A relative URL for a path inside the site, percent-encoded and escaped for an attribute."""
    return esc(quote(path, safe="/#"))


_CODE = re.compile(r"`([^`]+)`")
_BOLD = re.compile(r"\*\*(.+?)\*\*")
_EM = re.compile(r"(?<![\w*])\*(?![\s*])([^*]+?)(?<!\s)\*(?![\w*])")
_LINK = re.compile(r"(!?)\[([^\]]*)\]\(([^)\s]+)\)")


def inline(text: str, targets: frozenset[str] = frozenset()) -> str:
    """The inline markdown the boards and reports use (code, bold, emphasis) as escaped HTML; a link or image
    becomes one only when its target is in ``targets`` (files beside the page), otherwise its text."""
    parts = _CODE.split(text)
    out = []
    for i, part in enumerate(parts):
        if i % 2:
            out.append(f"<code>{esc(part)}</code>")
            continue
        part = _EM.sub(r"<em>\1</em>", _BOLD.sub(r"<strong>\1</strong>", esc(part)))
        out.append(_LINK.sub(lambda m: _link(m, targets), part))
    return "".join(out)


def _link(match: re.Match, targets: frozenset[str]) -> str:
    image, label, target = match.groups()
    target = html.unescape(target)
    if target not in targets:
        return label
    if image:
        return f'<a href="{href(target)}"><img src="{href(target)}" alt="{label}" loading="lazy"></a>'
    return f'<a href="{href(target)}">{label}</a>'


def page(title: str, nav: str, body: str) -> str:
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">', '<link rel="icon" href="data:,">',
        f"<title>{esc(title)}</title>", f"<style>{STYLE}</style>", "</head>", "<body>", nav, "<main>", body,
        "</main>", f"<script>{SCRIPT}</script>", "</body>", "</html>", ""])


def _nav(boards: list[Board], prefix: str = "") -> str:
    links = [f'<a href="{href(prefix + INDEX_NAME)}">All leaderboards</a>']
    links += [f'<a href="{href(prefix + b.dataset + ".html")}">{esc(b.title)}</a>' for b in boards]
    return f"<nav>{''.join(links)}</nav>"


# ---- the rows' files ------------------------------------------------------------------------------------


class RunFiles:
    """Where a row's record, report and plots sit in the site (copied from its run folder), by the row."""

    def __init__(self, results_dir: Path, out_dir: Path):
        self.results_dir, self.out_dir = results_dir.resolve(), out_dir
        self.copied: list[Path] = []

    def folder(self, row: Row) -> str | None:
        """The run folder relative to the site root (``results/<dataset>/<group>/<run>``), None for a paper's row."""
        if row.entry is None:
            return None
        relative = Path(os.path.relpath(row.entry.path.parent.resolve(), self.results_dir)).as_posix()
        if relative.startswith(".."):
            raise ValueError(f"{row.entry.path} is not under {self.results_dir}")
        return f"{RUNS_DIR}/{relative}"

    def plots(self, row: Row) -> list[tuple[str, str]]:
        """``(caption, file name)`` of the report's plots that exist beside the record."""
        if row.entry is None:
            return []
        run_dir = row.entry.path.parent
        return [(PLOT_CAPTIONS[key], name) for key, name in PLOT_NAMES.items() if (run_dir / name).exists()]

    def has_report(self, row: Row) -> bool:
        return row.entry is not None and (row.entry.path.parent / REPORT_NAME).exists()

    def copy(self, row: Row) -> None:
        """Copy the record, report and plots, and write the report's page."""
        run_dir, target = row.entry.path.parent, self.out_dir / self.folder(row)
        names = [RECORD_NAME, *(name for _, name in self.plots(row))]
        if self.has_report(row):
            names.append(REPORT_NAME)
        target.mkdir(parents=True, exist_ok=True)
        for name in names:
            shutil.copyfile(run_dir / name, target / name)
            self.copied.append(target / name)
        if self.has_report(row):
            markdown = (run_dir / REPORT_NAME).read_text(encoding="utf-8")
            levels = self.folder(row).count("/") + 1
            self.copied.append(atomic_write_text(target / REPORT_PAGE, report_page(
                markdown, row, frozenset(names), "../" * levels, f"{row.entry.record['dataset']}.html")))


def report_page(markdown: str, row: Row, targets: frozenset[str], root: str, board_page: str) -> str:
    """A run's ``report.md`` as a page; links and images resolve only to the files copied beside it."""
    blocks, paragraph, items, table = [], [], [], []

    def flush() -> None:
        if paragraph:
            blocks.append(f"<p>{inline(' '.join(paragraph), targets)}</p>")
        if items:
            blocks.append("<ul>" + "".join(f"<li>{inline(i, targets)}</li>" for i in items) + "</ul>")
        if table:
            head, *body = table
            cells = [f"<tr>{''.join(f'<th>{inline(c, targets)}</th>' for c in head)}</tr>"]
            cells += [f"<tr>{''.join(f'<td class=text>{inline(c, targets)}</td>' for c in r)}</tr>" for r in body]
            blocks.append(f'<div class="scroll"><table>{"".join(cells)}</table></div>')
        paragraph.clear(), items.clear(), table.clear()

    for line in markdown.splitlines():
        heading = re.match(r"(#{1,6}) (.*)", line)
        if heading or not line.strip():
            flush()
            if heading:
                level = len(heading.group(1))
                blocks.append(f"<h{level}>{inline(heading.group(2), targets)}</h{level}>")
        elif line.startswith("|"):
            if not re.match(r"\|[-:| ]+\|$", line):
                table.append([c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line)[1:-1]])
        elif line.startswith("- "):
            items.append(line[2:])
        elif items and line.startswith("  "):
            items[-1] += " " + line.strip()
        else:
            paragraph.append(line)
    flush()
    links = (f'<p><a href="{href(root + board_page)}">← the leaderboard</a> · <a href="{href(RECORD_NAME)}">'
             f'{RECORD_NAME}</a> · <a href="{href(REPORT_NAME)}">{REPORT_NAME}</a> (the source of this page)</p>')
    return page(f"Report: {row.label}", f'<nav><a href="{href(root + INDEX_NAME)}">All leaderboards</a></nav>',
                f'{links}<div class="report">{"".join(blocks)}</div>')


# ---- board pages ----------------------------------------------------------------------------------------


def _anchor(row: Row) -> str:
    return "plots-" + re.sub(r"[^A-Za-z0-9_-]+", "-", row.entry.group)


def html_table(rows: tuple[Row, ...], ranked: tuple[Row, ...], columns: tuple[MetricSpec, ...],
               trailing: tuple[tuple[str, str], ...], files: RunFiles) -> str:
    """One sortable table: the cells ``table_cells`` gives the markdown table, with the links made relative."""
    headers, body = table_cells(rows, ranked, columns, trailing)
    head = []
    for title in headers:
        kind, better = HEADER_TYPES.get(title, ("text", ""))
        head.append(f'<th scope="col" data-type="{kind}" data-better="{better}"><button type="button">'
                    f"{esc(title)}</button></th>")
    lines = [f"<thead><tr>{''.join(head)}</tr></thead>", "<tbody>"]
    for order, (row, cells) in enumerate(zip(rows, body, strict=True)):
        label = inline(cells[0].text)
        if files.plots(row):
            label = f'<a href="#{_anchor(row)}" title="plots of this run">{label}</a>'
        out = [f"<th scope=\"row\">{label}</th>"]
        for title, cell in zip(headers[1:], cells[1:], strict=True):
            kind = HEADER_TYPES.get(title, ("text", ""))[0]
            classes = [c for c in ("text" if kind == "text" else "", "best" if cell.best else "",
                                   "notes" if title == "notes" else "") if c]
            text = _links_cell(row, files) if title == "links" else inline(cell.text)
            if cell.best:
                text = f"<strong>{text}</strong>"
            attr = f' class="{" ".join(classes)}"' if classes else ""
            out.append(f"<td{attr}>{text}</td>")
        lines.append(f'<tr class="{row.kind}" data-order="{order}">{"".join(out)}</tr>')
    lines.append("</tbody>")
    return f'<div class="scroll"><table class="board">{"".join(lines)}</table></div>'


def _links_cell(row: Row, files: RunFiles) -> str:
    folder = files.folder(row)
    if folder is None:
        return MISSING
    links = [f'<a href="{href(f"{folder}/{RECORD_NAME}")}">record</a>']
    if files.has_report(row):
        links.append(f'<a href="{href(f"{folder}/{REPORT_PAGE}")}">report</a>')
    return " · ".join(links)


def _section(section: Section, level: int, files: RunFiles) -> list[str]:
    out = [f"<h{level}>{inline(section.heading)}</h{level}>", *(f"<p>{inline(p)}</p>" for p in section.intro)]
    if not section.rows:
        return [*out, "<p>No records yet.</p>"]
    for title, columns, trailing in TABLE_PARTS:
        out += [f"<h{level + 1}>{esc(title[0].upper() + title[1:])}</h{level + 1}>",
                html_table(section.rows, section.ranked, columns, trailing, files)]
    return out


def _task_table(table: TaskTable) -> str:
    """A task section's table in the boards' style (a row of a paper's figures marked *published*)."""
    head = "".join(f'<th scope="col" data-type="text"><button type="button">{esc(h)}</button></th>'
                   for h in table.headers)
    rows = []
    for order, cells in enumerate(table.rows):
        kind = "published" if "(published)" in cells[0] else "measured"
        rows.append(f'<tr class="{kind}" data-order="{order}"><th scope="row">{inline(cells[0])}</th>'
                    + "".join(f"<td>{inline(c)}</td>" for c in cells[1:]) + "</tr>")
    return (f'<div class="scroll"><table class="board"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}'
            "</tbody></table></div>")


KEY = ('<p class="key"><span class="published">(published)</span>a paper\'s own figures, never ranked '
       '<span class="external">(external)</span>another model\'s posted samples, evaluated here '
       '<span class="best"><strong>bold</strong></span>best value of its column among the ranked rows. '
       "Click a column header to sort (again to reverse); the model name leads to the run's plots. The rows and "
       "columns are those of the markdown board in <code>leaderboards/</code>.</p>")


def board_page(board: Board, boards: list[Board], files: RunFiles) -> str:
    """A dataset's page: the markdown board's sections, tables and notes, then the rows' plots."""
    body = [f"<h1>{esc(board.title)} leaderboard</h1>", f"<p>{inline(board.intro)}</p>", KEY,
            *_section(board.main, 2, files), *(f"<p>{inline(note)}</p>" for note in board.notes)]
    if board.sources:
        body += ["<p>Sources of the <em>published</em> rows:</p>",
                 "<ul>" + "".join(f"<li>{inline(s)}</li>" for s in board.sources) + "</ul>"]
    for section in board.others:
        body += _section(section, 2, files)
    for table in board.tasks:
        body += [f"<h2>{inline(table.heading)}</h2>", *(f"<p>{inline(p)}</p>" for p in table.intro),
                 _task_table(table)]
    rows = [row for section in (board.main, *board.others) for row in section.rows if files.plots(row)]
    if rows:
        body.append("<h2>Plots</h2><p>Each run's valid samples against the test split, from its report.</p>")
    for row in rows:
        folder = files.folder(row)
        figures = "".join(
            f'<figure><a href="{href(f"{folder}/{name}")}"><img src="{href(f"{folder}/{name}")}" '
            f'alt="{esc(row.label.replace("*", "") + ": " + caption)}" loading="lazy"></a>'
            f"<figcaption>{esc(caption)}</figcaption></figure>"
            for caption, name in files.plots(row))
        body.append(f'<section class="plots" id="{_anchor(row)}"><h3>{inline(row.label)}</h3>{figures}</section>')
    return page(f"{board.title} leaderboard · xtalbench", _nav(boards), "\n".join(body))


def index_page(boards: list[Board]) -> str:
    rows = []
    for board in boards:
        all_rows = [row for section in (board.main, *board.others) for row in section.rows]
        counts = {kind: sum(row.kind == kind for row in all_rows)
                  for kind in ("measured", "external", "published", "dataset")}
        rows.append(f'<tr><th scope="row"><a href="{href(board.dataset + ".html")}">{esc(board.title)}</a></th>'
                    + "".join(f"<td>{n}</td>" for n in counts.values()) + "</tr>")
    body = ["<h1>xtalbench leaderboards</h1>",
            f"<p>Protocol {esc(PROTOCOL_VERSION)}. Generated by <code>bench leaderboard --html</code> from the run "
            "records under <code>results/</code> and the papers' figures in "
            "<code>harness/data/published.json</code>, "
            "the same rows as the markdown boards in <code>leaderboards/</code>.</p>",
            '<table><thead><tr><th scope="col">dataset</th><th scope="col">runs</th>'
            '<th scope="col">external sets</th><th scope="col">published</th>'
            '<th scope="col">reference</th></tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table>"]
    return page("xtalbench leaderboards", _nav(boards), "\n".join(body))


def write_site(results_dir: str | Path, out_dir: str | Path) -> list[Path]:
    """Write ``index.html``, ``<dataset>.html`` per board and the rows' run files into ``out_dir``; return them.
    Files already there are overwritten, never removed: build into an empty folder to drop rows that are gone."""
    results_dir, out_dir = Path(results_dir), Path(out_dir)
    boards = build_boards(results_dir, out_dir)
    files = RunFiles(results_dir, out_dir)
    for board in boards:
        for section in (board.main, *board.others):
            for row in section.rows:
                if row.entry is not None:
                    files.copy(row)
    pages = [atomic_write_text(out_dir / f"{b.dataset}.html", board_page(b, boards, files)) for b in boards]
    return [atomic_write_text(out_dir / INDEX_NAME, index_page(boards)), *pages, *files.copied]
