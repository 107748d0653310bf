"""Idempotency keys on POSTs that create (appointments): a repeat gets the first answer again."""

from __future__ import annotations

import hashlib
import json
from typing import Callable

from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, transaction
from rest_framework import exceptions, status
from rest_framework.response import Response

from audit.services import jsonable

from .errors import ApiError
from .models import IdempotencyKey

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"


def _fingerprint(request) -> str:
    body = json.dumps(request.data, sort_keys=True, cls=DjangoJSONEncoder, separators=(",", ":"))
    return hashlib.sha256(f"{request.method} {request.path}\n{body}".encode()).hexdigest()


def idempotent(request, *, company, respond: Callable[[], Response]) -> Response:
    """`respond()` once per (user, Idempotency-Key); without the header, simply `respond()`.

    The key's row is inserted first, in the transaction that creates the row: a concurrent
    repeat waits on the unique index until that transaction ends, then replays its stored
    answer (header Idempotent-Replayed: true). When `respond` raises (a refused booking), the
    transaction and the key are rolled back, so the same key may be sent again. The same key
    with another method, path or body: 422 idempotency_key_reused.
    """
    key = request.headers.get(HEADER)
    if key is None:
        return respond()
    if not 1 <= len(key) <= 255 or not key.isprintable():
        raise exceptions.ValidationError({HEADER: ["1 to 255 printable characters."]})
    fingerprint = _fingerprint(request)
    with transaction.atomic():
        try:
            with transaction.atomic():
                record = IdempotencyKey.objects.create(company=company, user=request.user, key=key,
                                                       fingerprint=fingerprint, status_code=0, response={})
        except IntegrityError:
            record = IdempotencyKey.objects.get(user=request.user, key=key)
            if record.fingerprint != fingerprint:
                raise ApiError(status.HTTP_422_UNPROCESSABLE_ENTITY, "idempotency_key_reused",
                               f"This {HEADER} was sent before with another request; use a new key.") from None
            headers = {REPLAYED_HEADER: "true"}
            if "ETag" in record.response.get("_headers", {}):
                headers["ETag"] = record.response["_headers"]["ETag"]
            return Response(record.response["body"], status=record.status_code, headers=headers)
        response = respond()
        record.status_code = response.status_code
        record.response = {"body": jsonable(response.data), "_headers": {
            name: response[name] for name in ("ETag",) if response.has_header(name)}}
        record.save(update_fields=["status_code", "response"])
        return response
