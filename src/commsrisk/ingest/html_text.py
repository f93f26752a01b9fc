"""HTML message bodies (an e-mail's text/html part, a Teams message) as the text a reader sees.

Built on the stdlib `html.parser`: markup and scripts go, block elements and <br> become line
breaks, entities are decoded, an image or emoji keeps its alt text. Lines inside <blockquote>
get a "> " prefix per level, so the quote splitter in `ingest.quoting` moves a quoted reply
(Gmail's gmail_quote, a Teams reply) out of the text that is scored, as it does for plain text.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

_SKIPPED = frozenset({"script", "style", "head", "title", "template", "noscript"})
_BLOCKS = frozenset(
    {
        "address", "article", "aside", "br", "dd", "div", "dl", "dt", "footer", "form", "h1", "h2", "h3", "h4",
        "h5", "h6", "header", "hr", "li", "main", "nav", "ol", "p", "pre", "section", "table", "tbody", "td",
        "tfoot", "th", "thead", "tr", "ul",
    }
)  # fmt: skip
_SPACES = re.compile(r"[ \t\r\n\f\v\u00a0]+")


class _TextCollector(HTMLParser):
    """Collects (blockquote depth, text) lines while the parser walks the document."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[tuple[int, str]] = []
        self._parts: list[str] = []
        self._depth = 0
        self._line_depth = 0
        self._skipping = 0
        self._pre = 0

    def _break(self, *, hard: bool = False) -> None:
        """End the line; a block's edge ends only a line with text in it, a <br> any line (a blank one)."""
        if hard or "".join(self._parts).strip():
            self.lines.append((self._line_depth, "".join(self._parts)))
        self._parts = []
        self._line_depth = self._depth

    def finish(self) -> list[tuple[int, str]]:
        """Every line seen, the last one included, once the document has been fed."""
        self.close()
        self._break()
        return self.lines

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED:
            self._skipping += 1
        elif tag == "blockquote":
            self._break()
            self._depth += 1
            self._line_depth = self._depth
        elif tag in _BLOCKS:
            self._break(hard=tag == "br")
            self._pre += tag == "pre"
        elif tag in ("img", "emoji"):
            alt = dict(attrs).get("alt")
            if alt and not self._skipping:
                self._parts.append(alt)

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED:
            self._skipping = max(0, self._skipping - 1)
        elif tag == "blockquote":
            self._break()
            self._depth = max(0, self._depth - 1)
            self._line_depth = self._depth
        elif tag in _BLOCKS and tag != "br":
            self._break()
            self._pre -= tag == "pre" and self._pre > 0

    def handle_data(self, data: str) -> None:
        if self._skipping:
            return
        if self._pre:
            pieces = data.split("\n")
            for index, piece in enumerate(pieces):
                if index:
                    self._break(hard=True)
                self._parts.append(piece)
        else:
            self._parts.append(_SPACES.sub(" ", data))


def html_to_text(html: str) -> str:
    """The visible text of an HTML body: one line per block, blank lines collapsed, quotes marked "> "."""
    return _render(_lines(html), marked=True)


def html_text_and_quotes(html: str) -> tuple[str, str]:
    """The text outside <blockquote>s and the text inside them, apart (a chat reply and what it quotes).

    Unlike `html_to_text`, a line the author began with ">" stays in the text: only markup quotes.
    """
    lines = _lines(html)
    return _render([line for line in lines if not line[0]]), _render([line for line in lines if line[0]])


def _lines(html: str) -> list[tuple[int, str]]:
    collector = _TextCollector()
    collector.feed(html)
    return collector.finish()


def _render(lines: list[tuple[int, str]], *, marked: bool = False) -> str:
    """Lines stripped and joined, runs of blank lines as one; with `marked`, quoted lines get "> " per level."""
    out: list[str] = []
    for depth, raw in lines:
        line = raw.strip()
        if line == "--":  # a signature delimiter ("-- ") loses its space to whitespace collapsing
            line = "-- "
        if marked and depth and line:
            line = "> " * depth + line
        if line or (out and out[-1]):
            out.append(line)
    return "\n".join(out).strip("\n")
