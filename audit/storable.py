"""Inbound JSON read one way, and values from outside made to fit our columns.

Providers send what they send: text with NUL characters, strings longer than a column,
numbers no datetime can hold, JSON nested a thousand levels deep. PostgreSQL refuses
NUL in text and in jsonb, psycopg cannot encode a lone surrogate, and Django's JSON
encoder gives up near Python's recursion limit. Rather than lose a request or an event
to one such value, these functions make it fit and say what they changed, so the
caller records it (a receipt's `notes`).

The text and JSON functions are plain (no Django at import): the sans-IO protocols use
them too. `model_values_fit` asks a model's fields.
"""

import hashlib
import ipaddress
import math
import re

import orjson

# Levels of nesting kept inside one stored JSON value; a container deeper than this is
# stored as null. Far beyond any payload a provider documents, far below the depth at which
# Django's encoder (Python's recursion limit) or psycopg's decoder fail.
JSON_MAX_DEPTH = 32

_SURROGATE = re.compile("[\ud800-\udfff]")
# Characters no identifier of ours or a provider's holds: C0 controls (NUL among them),
# DEL, and lone surrogates.
_NOT_IN_IDENTIFIER = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")


class JSONRejected(ValueError):
    """A body that is not strict JSON (RFC 8259)."""


def json_loads(body: bytes | str):
    """The one reader of inbound JSON, for the views and the workers alike (orjson).

    Strict: NaN and Infinity, a number that overflows a double (`1e400`), a lone surrogate
    escape, invalid UTF-8 and nesting deeper than 1024 levels raise JSONRejected (a
    ValueError), so what a view accepted a worker reads the same way.
    """
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise JSONRejected(str(exc)) from None


def text_fit(value: str, limit: int | None = None) -> tuple[str, list[str]]:
    """`value` without NUL characters, its lone surrogates replaced by U+FFFD and cut to
    `limit` characters (None: no limit); and what was done, e.g. ["NUL characters removed"]."""
    done = []
    if "\x00" in value:
        value = value.replace("\x00", "")
        done.append("NUL characters removed")
    if _SURROGATE.search(value):
        value = _SURROGATE.sub("\ufffd", value)
        done.append("lone surrogates replaced")
    if limit is not None and len(value) > limit:
        value = value[:limit]
        done.append(f"cut to {limit} characters")
    return value, done


def identifier_problem(value: str, limit: int) -> str | None:
    """Why `value` cannot be an identifier (a call, agent or conversation id, a function name,
    a slug), or None when it can: it holds a control character (NUL among them) or a lone
    surrogate, or is longer than `limit` characters. An identifier is refused, never cleaned:
    a cleaned one could name another call."""
    if _NOT_IN_IDENTIFIER.search(value):
        return "holds a control character or a lone surrogate"
    if len(value) > limit:
        return f"is longer than {limit} characters"
    return None


def key_fit(value: str, limit: int) -> tuple[str, list[str]]:
    """A key that must stay distinct (a dedupe key), made to fit `limit` characters: when it
    had to be cleaned or cut, its start is kept and a digest of the whole replaces the
    rest, so two different keys never become one."""
    cleaned, done = text_fit(value)
    if not done and len(cleaned) <= limit:
        return value, []
    digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return f"{cleaned[:limit - len(digest) - 1]}#{digest}", [*done, "replaced by its start and a digest"]


def json_fit(value, *, max_depth: int = JSON_MAX_DEPTH) -> tuple[object, list[str]]:
    """A parsed JSON value that jsonb and Django's encoder take: its strings and keys through
    `text_fit` (no limit), non-finite floats as null, containers nested deeper than
    `max_depth` levels as null. Returns the value (the same object when nothing had to
    change) and what was done."""
    found: dict[str, None] = {}
    return _json_fit(value, 0, max_depth, found), list(found)


def _json_fit(value, depth: int, max_depth: int, found: dict):
    # Recursion is bounded by max_depth: a container below it is cut, not entered.
    if isinstance(value, str):
        if "\x00" in value or _SURROGATE.search(value):
            value, done = text_fit(value)
            found.update(dict.fromkeys(done))
        return value
    if isinstance(value, float) and not math.isfinite(value):
        found["non-finite numbers replaced by null"] = None
        return None
    if isinstance(value, list | dict):
        if depth >= max_depth:
            found[f"nested deeper than {max_depth} levels: the deeper part replaced by null"] = None
            return None
        if isinstance(value, list):
            items = [_json_fit(item, depth + 1, max_depth, found) for item in value]
            return value if all(a is b for a, b in zip(items, value, strict=True)) else items
        fitted = {_json_fit(key, depth, max_depth, found) if isinstance(key, str) else key:
                  _json_fit(item, depth + 1, max_depth, found) for key, item in value.items()}
        unchanged = len(fitted) == len(value) and all(
            key in value and fitted[key] is value[key] for key in fitted)
        return value if unchanged else fitted
    return value


def ip_or_none(value) -> str | None:
    """`value` when it is an IPv4 or IPv6 address a database's inet column takes, else None."""
    if not isinstance(value, str):
        return None
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    return None if getattr(address, "scope_id", None) else value


def model_values_fit(model, values: dict, *, where: str = "") -> tuple[dict, list[str]]:
    """`values` (field name -> value) made to fit `model`'s columns, field by field.

    Text is cleaned and cut to its column (`text_fit`; a URL is never cut, since a cut URL
    is another URL), JSON is cleaned (`json_fit`), and a value the field's own validation
    still refuses (an invalid URL, a number out of the column's range) is dropped. Returns
    the values kept and notes "<where><field>: <what was done>", one per change; never
    raises for a value.
    """
    from django.core.exceptions import ValidationError
    from django.db import models

    kept, notes = {}, []
    for name, value in values.items():
        field = model._meta.get_field(name)
        done: list[str] = []
        if isinstance(value, str):
            limit = None if isinstance(field, models.URLField) else field.max_length
            value, done = text_fit(value, limit)
        elif isinstance(value, list | dict):
            value, done = json_fit(value)
        try:
            value = field.clean(value, None)
        except ValidationError as exc:
            notes.append(f"{where}{name}: dropped ({' '.join(exc.messages)[:200]})")
            continue
        except (TypeError, ValueError, OverflowError, RecursionError) as exc:
            notes.append(f"{where}{name}: dropped ({type(exc).__name__})")
            continue
        kept[name] = value
        notes.extend(f"{where}{name}: {what}" for what in done)
    return kept, notes
