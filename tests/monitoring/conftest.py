"""Fixtures of the monitoring tools' tests: two companies with agents and calls, members of
each kind, and the ASGI server of tests.voice (HTTP and WebSocket on one port)."""

import pytest
from guardian.shortcuts import assign_perm

from retell_config.models import Agent
from tests.factories import make_company, make_member
from tests.retell_config.test_browser import browser_page  # noqa: F401 (a fixture)
from tests.voice.conftest import asgi_server, live_db  # noqa: F401 (fixtures)
from voice.models import Call


@pytest.fixture
def two_companies(transactional_db):
    """Alpha (two agents, a call each) and Beta (one agent, one call)."""
    alpha = make_company("Alpha Praxis", slug="alpha")
    beta = make_company("Beta Praxis", slug="beta")
    main = Agent.objects.create(company=alpha, agent_id="agent_main", name="Main Reception Agent")
    backup = Agent.objects.create(company=alpha, agent_id="agent_backup", name="Backup Agent")
    other = Agent.objects.create(company=beta, agent_id="agent_beta", name="Beta Agent")
    Call.objects.create(company=alpha, call_id="call_main_1", agent=main)
    Call.objects.create(company=alpha, call_id="call_backup_1", agent=backup)
    Call.objects.create(company=beta, call_id="call_beta_1", agent=other)
    return {"alpha": alpha, "beta": beta, "main": main, "backup": backup, "other": other}


@pytest.fixture
def limited_member(two_companies):
    """A viewer of Alpha limited to the main agent."""
    user = make_member(two_companies["alpha"], "viewer", username="limited-viewer", limited=True)
    assign_perm("retell_config.view_agent", user, two_companies["main"])
    return user
