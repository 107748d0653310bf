import asyncio

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from audit.models import ActivityLogEntry
from audit.services import activity_group_name, activity_log


def _listen(group: str):
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(group, channel)
    return layer, channel


def _receive(layer, channel, timeout: float = 3.0):
    async def receive():
        return await asyncio.wait_for(layer.receive(channel), timeout)

    return async_to_sync(receive)()


@pytest.mark.django_db
def test_a_line_is_stored_and_broadcast_to_its_companys_group_only(company_a, company_b,
                                                                   django_capture_on_commit_callbacks):
    layer, listener_a = _listen(activity_group_name(company_a.pk))
    _, listener_b = _listen(activity_group_name(company_b.pk))

    with django_capture_on_commit_callbacks(execute=True):
        entry = activity_log(company=company_a, kind="webhook.received", message="Webhook received: call_ended",
                             data={"call_id": "call_abc123"})

    stored = ActivityLogEntry.objects.get(pk=entry.pk)
    assert (stored.company, stored.kind, stored.data) == (company_a, "webhook.received", {"call_id": "call_abc123"})
    message = _receive(layer, listener_a)
    assert message["type"] == "activity.line"
    assert message["line"]["message"] == "Webhook received: call_ended"
    assert message["line"]["id"] == entry.pk
    with pytest.raises(asyncio.TimeoutError):
        _receive(layer, listener_b, timeout=0.3)


@pytest.mark.django_db
def test_a_line_is_broadcast_only_after_commit(company_a, django_capture_on_commit_callbacks):
    layer, listener = _listen(activity_group_name(company_a.pk))

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        activity_log(company=company_a, kind="test", message="not yet")

    assert len(callbacks) == 1
    with pytest.raises(asyncio.TimeoutError):
        _receive(layer, listener, timeout=0.3)


@pytest.mark.django_db
def test_a_dead_channel_layer_loses_no_line(settings, company_a, django_capture_on_commit_callbacks):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer",
                                           "CONFIG": {"hosts": ["redis://127.0.0.1:1/0"]}}}

    with django_capture_on_commit_callbacks(execute=True):
        entry = activity_log(company=company_a, kind="test", message="still stored")

    assert ActivityLogEntry.objects.filter(pk=entry.pk, message="still stored").exists()


@pytest.mark.django_db
def test_the_embedded_in_memory_layer_gets_the_line_too(settings, company_a, django_capture_on_commit_callbacks):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    layer, listener = _listen(activity_group_name(company_a.pk))

    with django_capture_on_commit_callbacks(execute=True):
        activity_log(company=company_a, kind="test", message="embedded line")

    assert _receive(layer, listener)["line"]["message"] == "embedded line"
