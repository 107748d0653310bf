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
import re

import orjson

# Levels of nesting kept in one stored JSON value; a container deeper than this is stored as
# null. The most orjson writes (so a value it writes needs no walk), far beyond any payload a
# provider documents, and far below where Django's encoder and psycopg's decoder (Python's
# recursion limit) give up.
JSON_MAX_DEPTH = 254

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


def json_fit(value) -> tuple[object, list[str]]:
    """A JSON value as `json_loads` returns it, made such that jsonb and Django's encoder take it:
    its strings and keys through `text_fit` (no limit), containers nested deeper than
    JSON_MAX_DEPTH levels as null. Returns the value (the same object when nothing had to
    change) and what was done."""
    try:
        # orjson refuses lone surrogates and nesting over JSON_MAX_DEPTH, and escapes NUL: a value
        # it writes without one needs no walk (a literal backslash-u0000 only costs the walk).
        if b"\\u0000" not in orjson.dumps(value):
            return value, []
    except TypeError:  # orjson.JSONEncodeError too: a surrogate, too deep, a key that is no string
        pass
    found: dict[str, None] = {}
    return _json_fit(value, 0, found), list(found)


def _json_fit(value, depth: int, found: dict):
    # One frame per level (no comprehensions), and none below JSON_MAX_DEPTH: the recursion is bounded.
    if isinstance(value, str):
        if "\x00" in value or _SURROGATE.search(value):
            value, done = text_fit(value)
            found.update(dict.fromkeys(done))
        return value
    if not isinstance(value, list | dict):
        return value
    if depth >= JSON_MAX_DEPTH:
        found[f"nested deeper than {JSON_MAX_DEPTH} levels: the deeper part replaced by null"] = None
        return None
    changed = False
    if isinstance(value, list):
        items = []
        for item in value:
            fitted = _json_fit(item, depth + 1, found)
            changed |= fitted is not item
            items.append(fitted)
        return items if changed else value
    entries = {}
    for key, item in value.items():
        fitted_key = _json_fit(key, depth, found) if isinstance(key, str) else key
        fitted = _json_fit(item, depth + 1, found)
        changed |= fitted_key is not key or fitted is not item
        entries[fitted_key] = fitted
    return entries if changed else value


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
