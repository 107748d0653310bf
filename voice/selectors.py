"""Reads of the voice app."""

import threading
import time

from retell_config.models import Agent

# What the Retell webhook checks read about an agent and its company.
_AGENT_COLUMNS = ["id", "agent_id", "company_id", "company__id", "company__name", "company__slug",
                  "company__is_active", "company__retell_api_key", "company__retell_require_published_ip"]
AGENT_CACHE_SECONDS = 5.0

_cache: dict[str, tuple[float, Agent | None]] = {}
_cache_lock = threading.Lock()


def webhook_agent(*, agent_id: str, fresh: bool = False) -> Agent | None:
    """The agent (with its active company) a Retell request names, or None.

    Kept a few seconds per process, since every webhook of a call asks for the same one;
    `fresh=True` reads the database (the webhook view does so before refusing a signature,
    so a rotated key is honoured at once; a deactivated company or deleted agent is
    noticed within AGENT_CACHE_SECONDS). The instances are shared: callers never change them.
    """
    now = time.monotonic()
    if not fresh:
        cached = _cache.get(agent_id)
        if cached is not None and now - cached[0] < AGENT_CACHE_SECONDS:
            return cached[1]
    agent = (Agent.objects.select_related("company").only(*_AGENT_COLUMNS)
             .filter(agent_id=agent_id, company__is_active=True).first())
    with _cache_lock:
        if len(_cache) > 10000:
            _cache.clear()
        _cache[agent_id] = (now, agent)
    return agent


def webhook_agent_forget() -> None:
    with _cache_lock:
        _cache.clear()
