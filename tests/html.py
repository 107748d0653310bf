"""Reading a page's tables in tests, with the standard library's HTML parser."""

from html.parser import HTMLParser


class _Tables(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: dict[str, list[dict]] = {}
        self._table: str | None = None
        self._row: dict | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table" and attrs.get("id"):
            self._table = attrs["id"]
            self.tables[self._table] = []
        elif tag == "tr" and self._table:
            self._row = {"attrs": attrs, "cells": [], "buttons": []}
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []
        elif tag == "button" and self._row is not None:
            self._row["buttons"].append(attrs.get("value", ""))

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row["cells"].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None and self._table:
            self.tables[self._table].append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def table_rows(html: str, table_id: str) -> list[dict]:
    """The rows of the table with this id: {"attrs": the tr's attributes, "cells": each cell's
    text with its whitespace collapsed, "buttons": the values of the row's buttons}."""
    parser = _Tables()
    parser.feed(html)
    return parser.tables.get(table_id, [])


class _Labels(HTMLParser):
    """The texts a person can find on a page: links (with their href), buttons, headings, captions,
    field labels and submit inputs; and the first link in the results table of a list."""

    TAGS = ("a", "button", "h1", "h2", "h3", "caption", "label")

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.labels: list[tuple[str, str | None]] = []
        self.first_result: str | None = None
        self._open: list[tuple[str, str | None, list[str]]] = []
        self._in_results = self._in_rows = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table" and attrs.get("id") == "result_list":
            self._in_results = True
        if tag == "tbody" and self._in_results:
            self._in_rows = True
        if tag == "a" and self._in_rows and self.first_result is None and attrs.get("href"):
            self.first_result = attrs["href"]
        if tag == "input" and attrs.get("type") == "submit" and attrs.get("value"):
            self.labels.append((attrs["value"], None))
        if tag in self.TAGS:
            self._open.append((tag, attrs.get("href") if tag == "a" else None, []))

    def handle_endtag(self, tag):
        if tag == "table":
            self._in_results = self._in_rows = False
        if tag in self.TAGS and self._open and self._open[-1][0] == tag:
            _, href, parts = self._open.pop()
            self.labels.append(("".join(parts), href))
            if self._open:  # a link inside a heading or caption is that heading's text too
                self._open[-1][2].extend(parts)

    def handle_data(self, data):
        if self._open:
            self._open[-1][2].append(data)


def page_labels(html: str) -> tuple[list[tuple[str, str | None]], str | None]:
    """([(text, href or None)], the href of the first row of the page's results table or None)."""
    parser = _Labels()
    parser.feed(html)
    return parser.labels, parser.first_result
