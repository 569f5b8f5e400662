"""One self-contained, interactive HTML page: plotly figures, tables that sort and filter.

The page opens offline and makes no network request: plotly.js (from the installed plotly
package) is inlined gzip-compressed and base64-encoded (1.9 MB instead of 4.8 MB) and unpacked
by the browser's own `DecompressionStream`; each figure travels as plotly JSON. When every
figure is drawn, `<body data-rendered="N">` says so (the browser test waits for it)."""

from __future__ import annotations

import base64
import gzip
import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib.resources import files
from typing import Any

import plotly.graph_objects as go

__all__ = ["Cell", "Page", "escape_json", "fmt"]

CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h2{margin-top:2em;border-bottom:1px solid #ddd}.note{color:#666;font-style:italic}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 7px;text-align:left}
summary{cursor:pointer;color:#1f77b4}th{background:#f3f3f3;cursor:pointer;user-select:none}
th[data-sort=asc]::after{content:" ▲"}
th[data-sort=desc]::after{content:" ▼"}input.filter{margin:.5em 0;padding:4px;width:24em}
pre{background:#f6f6f6;padding:1em;overflow:auto}.figure{min-height:160px}
tr.COMPLETE td:nth-child(2){color:#1f77b4}tr.PRUNED td:nth-child(2){color:#777}
tr.DIVERGED td:nth-child(2){color:#9467bd}tr.FAILED td:nth-child(2){color:#d62728}"""

# Draws every figure once plotly.js is unpacked; makes each table sortable (click a header) and
# filterable (every whitespace-separated word must appear in the row).
SCRIPT = """(async () => {
  const packed = document.getElementById("plotly-gz").textContent;
  const bytes = Uint8Array.from(atob(packed), c => c.charCodeAt(0));
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
  const code = document.createElement("script");
  code.textContent = await new Response(stream).text();
  document.head.appendChild(code);
  const figures = document.querySelectorAll("script[data-figure]");
  for (const spec of figures) {
    const fig = JSON.parse(spec.textContent);
    const div = document.getElementById(spec.dataset.figure);
    await Plotly.newPlot(div, fig.data, fig.layout, {responsive: true, displaylogo: false});
  }
  document.body.dataset.rendered = String(figures.length);
})();
for (const table of document.querySelectorAll("table.data")) {
  const body = table.tBodies[0];
  const rows = Array.from(body.rows);
  table.querySelectorAll("th").forEach((th, col) => th.addEventListener("click", () => {
    const dir = th.dataset.sort === "asc" ? "desc" : "asc";
    table.querySelectorAll("th").forEach(h => delete h.dataset.sort);
    th.dataset.sort = dir;
    const key = r => r.cells[col].dataset.value ?? r.cells[col].textContent;
    const cmp = (a, b) => {
      const x = key(a), y = key(b), nx = parseFloat(x), ny = parseFloat(y);
      if (isNaN(nx) !== isNaN(ny)) return isNaN(nx) ? 1 : -1;
      return isNaN(nx) ? x.localeCompare(y) : nx - ny;
    };
    rows.sort((a, b) => dir === "asc" ? cmp(a, b) : cmp(b, a)).forEach(r => body.appendChild(r));
  }));
  const filter = document.querySelector(`input[data-table="${table.id}"]`);
  if (filter) filter.addEventListener("input", () => {
    const words = filter.value.toLowerCase().split(/\\s+/).filter(Boolean);
    for (const r of rows) {
      const text = r.textContent.toLowerCase();
      r.hidden = !words.every(w => text.includes(w));
    }
  });
}"""


@cache
def _packed_plotly() -> str:
    """plotly.js from the installed plotly package, gzipped and base64-encoded (computed once)."""
    source = files("plotly").joinpath("package_data", "plotly.min.js").read_bytes()
    return base64.b64encode(gzip.compress(source, compresslevel=9, mtime=0)).decode()


def escape_json(value: str) -> str:
    """JSON text made safe inside a <script> element (no `</script>` can end it early)."""
    return value.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def fmt(value: Any) -> str:
    """A cell's text: floats to 5 significant digits, None as empty."""
    if value is None:
        return ""
    return f"{value:.5g}" if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class Cell:
    """A table cell: its text, and the value it sorts by when that differs (a number shown rounded)."""

    text: str
    sort: float | str | None = None


@dataclass
class Page:
    """An HTML page built section by section; every user string is escaped here."""

    title: str
    parts: list[str] = field(default_factory=list)
    figures: int = 0

    def heading(self, text: str, level: int = 2) -> None:
        """A section heading."""
        self.parts.append(f"<h{level}>{html.escape(text)}</h{level}>")

    def text(self, text: str, kind: str = "p") -> None:
        """A paragraph (`kind` "p"), a note (grey, "note"), a strong line ("strong") or a block ("pre")."""
        body = html.escape(text)
        self.parts.append(
            {
                "p": f"<p>{body}</p>",
                "note": f"<p class='note'>{body}</p>",
                "strong": f"<p><strong>{body}</strong></p>",
            }.get(kind, f"<pre>{body}</pre>")
        )

    def details(self, summary: str, text: str) -> None:
        """A block of text, folded under a one-line summary that opens it."""
        self.parts.append(f"<details><summary>{html.escape(summary)}</summary><pre>{html.escape(text)}</pre></details>")

    def figure(self, name: str, fig: go.Figure) -> None:
        """An interactive plotly figure, drawn in a div whose id is `name`."""
        self.figures += 1
        fig.update_layout(template="plotly_white", margin={"t": 50, "r": 30})
        self.parts.append(
            f"<div class='figure' id='{html.escape(name)}'></div>"
            f"<script type='application/json' data-figure='{html.escape(name)}'>{escape_json(fig.to_json())}</script>"
        )

    def table(self, name: str, columns: Sequence[str], rows: Sequence[tuple[str, Sequence[Cell]]]) -> None:
        """A table that sorts by any column (click its header) and filters by words; each row
        is (its CSS class, its cells)."""
        head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
        body = "".join(
            f"<tr class='{html.escape(cls)}'>"
            + "".join(
                f"<td data-value='{html.escape(str(c.sort))}'>{html.escape(c.text)}</td>"
                if c.sort is not None
                else f"<td>{html.escape(c.text)}</td>"
                for c in cells
            )
            + "</tr>"
            for cls, cells in rows
        )
        self.parts.append(
            f"<input class='filter' data-table='{html.escape(name)}' placeholder='filter rows: words that must appear'>"
            f"<table class='data' id='{html.escape(name)}'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
        )

    def render(self) -> str:
        """The whole page, plotly.js inlined: one file that opens offline."""
        return (
            f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(self.title)}</title>"
            f"<style>{CSS}</style></head><body>{''.join(self.parts)}"
            f"<script type='application/octet-stream' id='plotly-gz'>{_packed_plotly()}</script>"
            f"<script>{SCRIPT}</script></body></html>"
        )
