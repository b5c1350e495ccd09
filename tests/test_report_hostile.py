"""Hostile names in every report: printed literally, never interpreted, never a broken file.

Suite names come from suites, check names from suites, class names from ImageFolder folder
names (`[/x]` is a valid folder name; an undecodable byte becomes a lone surrogate), and
messages quote them. Each renderer must show them as written: no rich markup, no HTML or
Markdown in summary.md, no character that makes junit.xml unparsable or a file unwritable.
"""

import io
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

from helpers import sample_doc
from markdown_it import MarkdownIt
from rich.console import Console

from qa.report import junit, markdown, render_all, terminal

RICH_MARKUP = ["[/x]", "[bold red]loud[/bold red]", "[link=x.y]go[/link]"]


def _named(names: list[str], suite: str = "release", message: str | None = None) -> dict:
    """The test result document with its first checks renamed (and given `message`)."""
    doc = sample_doc()
    doc["suite"]["name"] = suite
    for check, name in zip(doc["checks"], names, strict=False):
        check["name"] = name
        if message is not None:
            check["message"] = message
    return doc


def _terminal(doc: dict) -> str:
    out = io.StringIO()
    terminal.show(doc, Console(file=out, width=120, color_system=None))
    return out.getvalue()


def test_terminal_prints_rich_markup_in_names_and_messages_literally():
    doc = _named(RICH_MARKUP, suite="[bold]rel[/]", message="class [/x] [red]is low")
    text = _terminal(doc)
    assert "qa [bold]rel[/]: candidate.pt" in text
    for name in RICH_MARKUP:
        assert name in text
    assert text.count("class [/x] [red]is low") == len(RICH_MARKUP)


def test_terminal_prints_control_characters_as_escapes():
    text = _terminal(_named(["bell\x07", "esc\x1b[2Jx", "nul\x00", "\udcff"], suite="s\x1b]0;t"))
    assert "\x1b" not in text and "\x07" not in text and "\x00" not in text
    for shown in ("bell\\x07", "esc\\x1b[2Jx", "nul\\x00", "\\udcff", "qa s\\x1b]0;t"):
        assert shown in text
    text.encode("utf-8")  # a lone surrogate could not be written to a UTF-8 terminal


def test_junit_with_control_characters_in_names_and_messages_still_parses():
    names = ["a\x01b", "esc\x1b", "ff\x0c", "nul\x00", "\udcff"]
    doc = _named(names, suite="suite\x0b", message="class \x08 missed\x00")
    doc["checks"][0]["family"] = "fam\x02"
    root = ET.fromstring(junit.render(doc).encode("utf-8"))
    assert root.get("name") == "suite\\x0b"
    cases = list(root.iter("testcase"))
    assert [c.get("name") for c in cases] == [
        "a\\x01b",
        "esc\\x1b",
        "ff\\x0c",
        "nul\\x00",
        "\\udcff",
    ]
    assert cases[0].get("classname") == "fam\\x02"
    assert cases[1].find("failure").get("message") == "class \\x08 missed\\x00"
    assert "class \\x08 missed\\x00" in cases[1].find("failure").text


class _Page(HTMLParser):
    """The tags of rendered Markdown and the text of each table cell."""

    def __init__(self):
        super().__init__()
        self.tags, self.cells, self._cell = set(), [], None

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        if tag == "td":
            self._cell = ""

    def handle_endtag(self, tag):
        if tag == "td":
            self.cells.append(self._cell)
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data


HOSTILE_MARKDOWN = [
    "<img src=x onerror=alert(1)>",
    "[click](https://e.example) ![i](https://e.example/i.png)",
    "a | b\nc",
    "`code` *bold* _it_ ~~del~~ $x$ &lt;",
    "<script>alert(1)</script>",
]


def test_markdown_writes_every_user_string_as_literal_text():
    doc = _named(HOSTILE_MARKDOWN, suite="<b>s</b> [x](y)", message="cls <i>|</i>")
    doc["checkpoint"]["path"] = "model``<b>.pt"
    text = markdown.render(doc)
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    assert len(rows) == 1 + len(doc["checks"])  # no newline broke the table
    page = _Page()
    page.feed(MarkdownIt("commonmark").enable(["table", "strikethrough"]).render(text))
    assert page.tags <= {"h3", "p", "strong", "code", "table", "thead", "tbody", "tr", "th", "td"}
    names = {page.cells[i + 1] for i in range(0, len(page.cells), 5)}
    assert names == {n.replace("\n", " ") for n in HOSTILE_MARKDOWN}
    assert {page.cells[i + 4] for i in range(0, len(page.cells), 5)} == {"cls <i>|</i>"}
    assert "<b>" not in text.split("\n")[0] and "model``<b>.pt" in text


def test_every_report_is_writable_and_literal_with_hostile_class_and_check_names():
    doc = _named(["[/x]\udcff", "<b>\x00"], message="worst class [/x]\udcff")
    texts = render_all(doc)
    for fmt, text in texts.items():
        text.encode("utf-8")  # a lone surrogate from a folder name is written as an escape
        assert ("\\[/x\\]" if fmt == "md" else "[/x]") in text, fmt
    assert "&lt;b&gt;\\x00" in texts["html"] and "<b>" not in texts["html"]
    ET.fromstring(texts["junit"])
