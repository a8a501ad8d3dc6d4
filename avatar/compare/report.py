"""A self-contained HTML report: one file, figures embedded, no server, no network.

    r = Report("Rig audit: humanoid", "83 sliders, 32 random avatars")
    r.section("Redundant sliders", "Two sliders are redundant when they move the same vertices the same way.")
    r.metric_cards([("effective rank", "54.4", "of 60 sliders")])
    r.figure(fig_or_png_bytes, "Cosine similarity of every pair of sliders.")
    r.table(rows, header=["slider", "region", "max mm"])
    r.write("reports/rig-audit/report.html")

Every text is HTML-escaped; figures become ``data:image/png;base64`` URIs; the
style sheet is inline and nothing refers to anything outside the file (no
fonts, scripts or images from the web), so the page opens from disk anywhere.
Each section starts with one plain sentence for a reader new to the topic.
"""
from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from pathlib import Path

TONES = ("good", "warn", "bad", "muted")

CSS = """
:root { --ink: #1d2430; --muted: #5b6474; --line: #dde1e8; --bg: #f7f8fa; --card: #ffffff;
        --accent: #3b5b92; --good: #2e7d4f; --warn: #a86b00; --bad: #b3261e; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.55 system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
       color: var(--ink); background: var(--bg); }
main { max-width: 1180px; margin: 0 auto; padding: 28px 28px 80px; }
header h1 { margin: 0 0 4px; font-size: 28px; }
header p.subtitle { margin: 0 0 14px; color: var(--muted); }
nav.toc { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 10px 16px;
          margin: 18px 0 8px; font-size: 14px; }
nav.toc ol { margin: 4px 0; padding-left: 20px; columns: 2; }
section { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 18px 22px;
          margin: 20px 0; }
section h2 { margin: 0 0 6px; font-size: 21px; }
section h3 { margin: 18px 0 6px; font-size: 17px; }
p.intro { margin: 0 0 12px; padding: 8px 12px; background: #eef2f9; border-left: 4px solid var(--accent);
          border-radius: 4px; }
p.note { padding: 8px 12px; background: #fff6e5; border-left: 4px solid var(--warn); border-radius: 4px; }
figure { margin: 14px 0; text-align: center; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 6px; background: #fff; }
figcaption { color: var(--muted); font-size: 13.5px; margin-top: 6px; text-align: left; }
table { border-collapse: collapse; width: 100%; font-size: 13px; margin: 8px 0; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f0f2f6; position: sticky; top: 0; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
caption { caption-side: top; text-align: left; color: var(--muted); padding-bottom: 4px; }
.table-wrap { max-height: 640px; overflow: auto; border: 1px solid var(--line); border-radius: 6px; }
.good { color: var(--good); font-weight: 600; } .warn { color: var(--warn); font-weight: 600; }
.bad { color: var(--bad); font-weight: 600; } .muted { color: var(--muted); }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin: 10px 0; }
.card { flex: 1 1 180px; border: 1px solid var(--line); border-radius: 8px; padding: 10px 14px; background: #fbfcfe; }
.card .label { color: var(--muted); font-size: 12.5px; text-transform: uppercase; letter-spacing: .03em; }
.card .value { font-size: 26px; font-weight: 650; margin: 2px 0; }
.card .sub { color: var(--muted); font-size: 12.5px; }
dl.terms dt { font-weight: 650; margin-top: 8px; } dl.terms dd { margin: 2px 0 0 18px; }
details summary { cursor: pointer; color: var(--accent); margin: 8px 0; }
footer { color: var(--muted); font-size: 12.5px; margin-top: 30px; }
"""


def _esc(text) -> str:
    return html.escape(str(text), quote=True)


def _slug(text: str, used: set) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-") or "section"
    slug, i = base, 2
    while slug in used:
        slug, i = f"{base}-{i}", i + 1
    used.add(slug)
    return slug


def png_data_uri(png: bytes) -> str:
    """``data:image/png;base64,...`` for PNG bytes (checked: they must start with the PNG signature)."""
    if not bytes(png[:8]) == b"\x89PNG\r\n\x1a\n":
        raise ValueError("not PNG data")
    return "data:image/png;base64," + base64.b64encode(bytes(png)).decode("ascii")


@dataclass
class _Section:
    title: str
    anchor: str
    parts: list = field(default_factory=list)


class Report:
    """Build a one-file HTML report section by section, then :meth:`write` it.

    Parameters
    ----------
    title : the page title.
    subtitle : one line under it (what was analysed, when, settings).
    intro : an optional opening paragraph before the first section.
    """

    def __init__(self, title: str, subtitle: str = "", intro: str = ""):
        self.title = title
        self.subtitle = subtitle
        self.intro = intro
        self.sections: list[_Section] = []
        self._anchors: set = set()
        self.footer = "Generated by avatar. This file is self-contained: it needs no network or server."

    # -- structure -------------------------------------------------------
    def section(self, title: str, intro: str) -> "Report":
        """Start a section. ``intro``: one plain-language sentence for a newcomer (required)."""
        if not str(intro).strip():
            raise ValueError(f"section {title!r}: give a one-sentence introduction for a newcomer")
        self.sections.append(_Section(title, _slug(title, self._anchors)))
        self._add(f'<p class="intro">{_esc(intro)}</p>')
        return self

    def subsection(self, title: str, intro: str = "") -> "Report":
        """A heading inside the current section, with an optional first sentence."""
        self._add(f"<h3>{_esc(title)}</h3>" + (f"<p>{_esc(intro)}</p>" if intro else ""))
        return self

    def _add(self, fragment: str) -> None:
        if not self.sections:
            raise ValueError("start a section first: report.section(title, intro)")
        self.sections[-1].parts.append(fragment)

    # -- content ---------------------------------------------------------
    def paragraph(self, text: str, tone: str | None = None) -> "Report":
        """A paragraph of plain text; ``tone="note"`` draws it as a highlighted remark."""
        cls = ' class="note"' if tone == "note" else ""
        self._add(f"<p{cls}>{_esc(text)}</p>")
        return self

    def bullets(self, items) -> "Report":
        """A bulleted list; an item may be a ``(text, tone)`` pair (tone: good, warn, bad, muted)."""
        lis = "".join(f"<li>{self._cell(it)}</li>" for it in items)
        self._add(f"<ul>{lis}</ul>")
        return self

    def links(self, items) -> "Report":
        """A bulleted list of links: (text, relative URL, note) triples (the note may be "")."""
        lis = "".join(f'<li><a href="{_esc(url)}">{_esc(text)}</a>{(" " + _esc(note)) if note else ""}</li>'
                      for text, url, note in items)
        self._add(f"<ul>{lis}</ul>")
        return self

    def definitions(self, items) -> "Report":
        """Terms and their explanations: a mapping or (term, text) pairs."""
        pairs = items.items() if hasattr(items, "items") else items
        body = "".join(f"<dt>{_esc(t)}</dt><dd>{_esc(d)}</dd>" for t, d in pairs)
        self._add(f'<dl class="terms">{body}</dl>')
        return self

    def figure(self, image, caption: str, alt: str | None = None, width: int | None = None) -> "Report":
        """An embedded figure: PNG bytes or a matplotlib Figure (converted and closed)."""
        if hasattr(image, "savefig"):
            from .figures import to_png

            image = to_png(image)
        style = f' style="max-width:{int(width)}px"' if width else ""
        self._add(f'<figure><img src="{png_data_uri(image)}" alt="{_esc(alt or caption)}"{style}>'
                  f"<figcaption>{_esc(caption)}</figcaption></figure>")
        return self

    def table(self, rows, header, caption: str = "", numeric=None, collapsed: str | None = None,
              scroll: bool | None = None) -> "Report":
        """A table of ``rows`` (sequences of cells) under ``header``.

        A cell is any value (printed with ``str``; floats get 3 significant figures)
        or a ``(text, tone)`` pair. numeric : column indices to right-align (default:
        those whose cells are all numbers). collapsed : put the table in a
        ``<details>`` block with this summary text. scroll : a scrolling box
        (default: more than 25 rows).
        """
        rows = [list(r) for r in rows]
        header = list(header)
        for r in rows:
            if len(r) != len(header):
                raise ValueError(f"a row has {len(r)} cells but the header has {len(header)}")
        if numeric is None:
            numeric = {c for c in range(len(header))
                       if rows and all(isinstance(r[c], (int, float)) and not isinstance(r[c], bool) for r in rows)}
        numeric = set(numeric)
        head = "".join(f'<th{" class=num" if c in numeric else ""}>{_esc(h)}</th>' for c, h in enumerate(header))
        body = "".join("<tr>" + "".join(f'<td{" class=num" if c in numeric else ""}>{self._cell(v)}</td>'
                                        for c, v in enumerate(r)) + "</tr>" for r in rows)
        cap = f"<caption>{_esc(caption)}</caption>" if caption else ""
        out = f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
        if scroll if scroll is not None else len(rows) > 25:
            out = f'<div class="table-wrap">{out}</div>'
        if collapsed:
            out = f"<details><summary>{_esc(collapsed)}</summary>{out}</details>"
        self._add(out)
        return self

    def metric_cards(self, cards) -> "Report":
        """A row of headline numbers: (label, value[, note[, tone]]) tuples or dicts with those keys."""
        html_cards = []
        for c in cards:
            if isinstance(c, dict):
                label, value, note, tone = c["label"], c["value"], c.get("note", ""), c.get("tone")
            else:
                label, value, note, tone = (list(c) + ["", None])[:4]
            cls = f" {tone}" if tone in TONES else ""
            html_cards.append(f'<div class="card"><div class="label">{_esc(label)}</div>'
                              f'<div class="value{cls}">{_esc(self._fmt(value))}</div>'
                              f'<div class="sub">{_esc(note)}</div></div>')
        self._add(f'<div class="cards">{"".join(html_cards)}</div>')
        return self

    @staticmethod
    def _fmt(v) -> str:
        if isinstance(v, float):
            return f"{v:.3g}" if abs(v) < 1e4 else f"{v:,.0f}"
        return str(v)

    def _cell(self, v) -> str:
        if isinstance(v, tuple) and len(v) == 2 and v[1] in TONES:
            return f'<span class="{v[1]}">{_esc(self._fmt(v[0]))}</span>'
        return _esc(self._fmt(v))

    # -- output ----------------------------------------------------------
    def html(self) -> str:
        """The whole page as one string."""
        toc = "".join(f'<li><a href="#{s.anchor}">{_esc(s.title)}</a></li>' for s in self.sections)
        secs = "".join(f'<section id="{s.anchor}"><h2>{_esc(s.title)}</h2>{"".join(s.parts)}</section>'
                       for s in self.sections)
        intro = f"<p>{_esc(self.intro)}</p>" if self.intro else ""
        sub = f'<p class="subtitle">{_esc(self.subtitle)}</p>' if self.subtitle else ""
        nav = f'<nav class="toc"><strong>Contents</strong><ol>{toc}</ol></nav>' if len(self.sections) > 1 else ""
        return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
                f"<title>{_esc(self.title)}</title><style>{CSS}</style></head><body><main>"
                f"<header><h1>{_esc(self.title)}</h1>{sub}{intro}</header>{nav}{secs}"
                f"<footer>{_esc(self.footer)}</footer></main></body></html>\n")

    def write(self, path) -> Path:
        """Write the page to ``path`` (atomically: never a half-written file); returns the path."""
        from avatar.export import atomic_write

        text = self.html().encode("utf-8")
        path = Path(path)
        atomic_write(path, lambda f: f.write(text))
        return path
