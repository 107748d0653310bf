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
