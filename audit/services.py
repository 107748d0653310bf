"""Writes of the audit app: audit entries, audited saves and deletes, activity lines.

Every configuration change in the product goes through `instance_save` /
`instance_delete` (or a service built on them), so the admin, the API, the gateway,
commands and tasks all leave the same audit trail.
"""

import asyncio
import hashlib
import json
import logging
import os
import queue
import threading

from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models, transaction

from tenants.fields import Secret, is_credential
from tenants.models import Company, rows_outside_company

from .actor import Actor
from .models import ActivityLogEntry, AuditEntry

logger = logging.getLogger(__name__)

REDACTED = "[redacted]"


def _company_id_of(instance: models.Model) -> int | None:
    if isinstance(instance, Company):
        return instance.pk
    return getattr(instance, "company_id", None)


def _audited_fields(model: type[models.Model]):
    for field in model._meta.concrete_fields:
        if field.primary_key or getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
            continue
        yield field


def jsonable(value):
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def snapshot(instance: models.Model, m2m: dict | None = None) -> dict:
    """Field values as JSON; a secret or other credential as a fingerprint that is never stored.

    Many-to-many values come from `m2m` where given (about to be set), else the database.
    """
    m2m = m2m or {}
    values = {}
    for field in _audited_fields(type(instance)):
        value = getattr(instance, field.attname)
        if isinstance(value, Secret):
            values[field.name] = ("secret", value.fingerprint())
        elif is_credential(field):
            values[field.name] = ("credential", hashlib.sha256(str(value).encode()).hexdigest()) if value else None
        else:
            values[field.name] = jsonable(field.value_from_object(instance))
    for field in instance._meta.many_to_many:
        if field.name in m2m:
            values[field.name] = sorted(getattr(v, "pk", v) for v in m2m[field.name])
        elif instance.pk is not None:
            values[field.name] = sorted(getattr(instance, field.name).values_list("pk", flat=True))
    return values


def diff(model: type[models.Model], before: dict, after: dict) -> dict:
    """{field: {"before", "after"}} of what changed; a credential (tenants.fields.is_credential)
    shows only as "[redacted]" or None, whoever reads the entry."""
    secret_fields = {f.name for f in model._meta.concrete_fields if is_credential(f)}
    changes = {}
    for name in sorted(set(before) | set(after)):
        old, new = before.get(name), after.get(name)
        if old == new:
            continue
        if name in secret_fields:
            old = REDACTED if old else None
            new = REDACTED if new else None
        changes[name] = {"before": old, "after": new}
    return changes


def audit_record(*, actor: Actor, action: str, company_id: int | None, object_type: str = "",
                 object_id: str = "", object_repr: str = "", changes: dict | None = None) -> AuditEntry:
    return AuditEntry.objects.create(
        company_id=company_id,
        actor_kind=actor.kind,
        actor_user=actor.user if getattr(actor.user, "pk", None) else None,
        actor_label=actor.label[:200],
        action=action,
        object_type=object_type,
        object_id=object_id,
        object_repr=object_repr[:200],
        changes=changes or {},
        request_id=actor.request_id,
        ip=actor.ip,
    )


def audit_entry_for(actor: Actor, action: str, instance: models.Model, changes: dict) -> AuditEntry:
    return audit_record(actor=actor, action=action, company_id=_company_id_of(instance),
                        object_type=instance._meta.label_lower, object_id=str(instance.pk),
                        object_repr=str(instance), changes=changes)


@transaction.atomic
def instance_save(*, actor: Actor, instance: models.Model, m2m: dict | None = None,
                  action: str | None = None) -> models.Model:
    """Validate, save and audit one row (and its many-to-many fields).

    An update that changes nothing writes nothing, so services built on this are
    safe to repeat.
    """
    model = type(instance)
    creating = instance._state.adding or instance.pk is None
    before = {} if creating else snapshot(model._base_manager.get(pk=instance.pk))
    instance.full_clean()
    # full_clean skips the empty values of blank=True fields, None among them, which a NOT NULL
    # column refuses: an import's "parameters": null is the client's error, not the database's.
    nulls = {field.name: ValidationError(field.error_messages["null"], code="null")
             for field in _audited_fields(model) if not field.null and getattr(instance, field.attname) is None}
    if nulls:
        raise ValidationError(nulls)
    company_id = _company_id_of(instance)
    for name, values in (m2m or {}).items():
        field = model._meta.get_field(name)
        pks = [getattr(v, "pk", v) for v in values]
        if company_id and rows_outside_company(field.related_model, pks, company_id):
            raise ValidationError({name: "Choose only this company's own %s." % field.related_model._meta.verbose_name_plural})
    changes = diff(model, before, snapshot(instance, m2m))
    if not creating and not changes:
        return instance  # nothing to write: a repeated call is a no-op
    instance.save()
    for name, values in (m2m or {}).items():
        getattr(instance, name).set(values)
    if creating:
        changes = diff(model, {}, snapshot(instance))
    audit_entry_for(actor, action or ("create" if creating else "update"), instance, changes)
    return instance


@transaction.atomic
def instance_delete(*, actor: Actor, instance: models.Model) -> None:
    model = type(instance)
    changes = diff(model, snapshot(instance), {})
    audit_entry_for(actor, "delete", instance, changes)
    instance.delete()


def activity_group_name(company_id: int | None) -> str:
    return f"activity.company.{company_id}" if company_id else "activity.platform"


def activity_line_payload(entry: ActivityLogEntry) -> dict:
    return {
        "id": entry.pk,
        "time": entry.created_at.isoformat(),
        "company_id": entry.company_id,
        "kind": entry.kind,
        "level": entry.level,
        "message": entry.message,
        "data": entry.data,
    }


class _BackgroundSender:
    """Sends group messages to a networked channel layer from one thread of this process.

    A request or a task never waits on Redis for the sake of a live viewer: the line is
    already stored, and the send happens behind it. Restarted after a fork (Celery's
    prefork pool), since threads do not survive one.
    """

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._pid: int | None = None

    def submit(self, group: str, message: dict) -> None:
        with self._lock:
            if self._pid != os.getpid():
                self._queue = queue.SimpleQueue()
                threading.Thread(target=self._run, args=(self._queue,), name="activity-broadcast",
                                 daemon=True).start()
                self._pid = os.getpid()
        self._queue.put((group, message))

    @staticmethod
    def _run(jobs: queue.SimpleQueue) -> None:
        loop = asyncio.new_event_loop()
        while True:
            group, message = jobs.get()
            try:
                loop.run_until_complete(get_channel_layer().group_send(group, message))
            except Exception:  # the line is stored; a live viewer missing it must not stop the sender
                logger.warning("Activity line %s was stored but not broadcast", message["line"]["id"],
                               exc_info=True)


_background_sender = _BackgroundSender()


def _broadcast(entry: ActivityLogEntry) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    group = activity_group_name(entry.company_id)
    message = {"type": "activity.line", "line": activity_line_payload(entry)}
    if isinstance(layer, InMemoryChannelLayer):
        # The embedded run's layer lives in the server's own event loop: send there, in line.
        try:
            async_to_sync(layer.group_send)(group, message)
        except Exception:
            logger.warning("Activity line %s was stored but not broadcast", entry.pk, exc_info=True)
        return
    _background_sender.submit(group, message)


def activity_log(*, company: Company | int | None, kind: str, message: str, data: dict | None = None,
                 level: str = "info") -> ActivityLogEntry:
    """Persist one activity line and, once committed, broadcast it to the company's group."""
    company_id = company.pk if isinstance(company, Company) else company
    entry = ActivityLogEntry.objects.create(company_id=company_id, kind=kind, level=level,
                                            message=message, data=jsonable(data or {}))
    transaction.on_commit(lambda: _broadcast(entry))
    return entry
