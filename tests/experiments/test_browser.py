"""In a real browser (Playwright driving Debian's chromium, headless) against a live server:
an admin opens the agent, adds an experiment with two variants, starts it, and (once outcomes
are in) sees the winner and its chart, and promotes it to the agent's live prompt. The results
page is also read with JavaScript off: the charts are server-drawn SVG."""

import re

import pytest
from django.db import connections

from experiments.models import Experiment
from retell_config.models import Agent, PromptVersion
from tests.experiments.test_results import seed
from tests.factories import make_company, make_member
from tests.retell_config.test_browser import HAVE_CHROMIUM, PASSWORD, browser_page, log_in  # noqa: F401

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not HAVE_CHROMIUM, reason="no chromium here (apt-get install chromium)"),
]

GREETING_B = "Hallo, schön dass Sie anrufen! Womit kann ich helfen?"


@pytest.fixture
def agent(transactional_db):
    company = make_company("Praxis im Browser", slug="browser-praxis")
    make_member(company, "owner", username="browser-owner")
    return Agent.objects.create(company=company, agent_id="agent_browser_exp", name="Main Reception Agent",
                                begin_message="Praxis im Browser, guten Tag.", general_prompt="Sie sind die Rezeption.")


def test_an_admin_runs_an_experiment_end_to_end(agent, live_server, browser_page):  # noqa: F811
    page = browser_page
    log_in(page, live_server, f"/admin/retell_config/agent/{agent.pk}/change/")

    page.click("text=Add an experiment")
    page.fill("#id_name", "Warmer greeting")
    page.fill("#id_baseline", "0.3")
    page.fill("#id_minimum_detectable_effect", "0.3")
    page.fill("#id_variants-0-name", "A: today's greeting")
    page.fill("#id_variants-1-name", "B: warmer greeting")
    page.fill("#id_variants-1-begin_message", GREETING_B)
    page.click("input[name=_continue]")
    page.wait_for_selector("#experiment-results")
    assert "No winner yet" in page.inner_text("#experiment-results")
    needed = int(re.search(r"Minimum sample: (\d+)", page.inner_text(".experiment-sample"))[1])

    page.click("input[value='Start experiment']")
    page.wait_for_selector("input[value='Stop experiment']")
    assert "is running" in page.inner_text(".messagelist")

    experiment = Experiment.objects.get(name="Warmer greeting")
    a, b = experiment.variants.order_by("pk")
    seed(a, calls=needed + 10, booked=(needed + 10) // 4)
    seed(b, calls=needed + 10, booked=(needed + 10) * 3 // 4)
    page.reload()
    assert "Winner: B: warmer greeting" in page.inner_text("#experiment-winner")
    assert page.locator("#experiment-results svg").count() == 2

    page.select_option("#promote-variant", str(b.pk))
    page.click("input[value='Promote to live prompt']")
    page.wait_for_selector(".messagelist")
    assert "promoted variant is now the agent's live prompt" in page.inner_text(".messagelist")
    page.close()   # the live server's request threads finish (and give back their database sessions)

    experiment.refresh_from_db()
    agent.refresh_from_db()
    assert experiment.status == Experiment.Status.PROMOTED and experiment.winner == b
    assert agent.begin_message == GREETING_B
    assert PromptVersion.objects.filter(agent=agent, begin_message=GREETING_B).exists()

    # The same page with JavaScript off: the results and their charts are there as drawn on the server.
    no_js = page.context.browser.new_context(java_script_enabled=False).new_page()
    log_in(no_js, live_server, f"/admin/experiments/experiment/{experiment.pk}/change/")
    no_js.wait_for_selector("#experiment-results")
    assert no_js.locator("#experiment-results svg").count() == 2
    assert "Winner: B: warmer greeting" in no_js.inner_text("#experiment-results")
    no_js.close()
    no_js.context.close()
    # This body's ORM reads ran inside Playwright's greenlet, on a database session of their own that the
    # browser fixture's teardown terminates; closed here, so a later test does not inherit it dead.
    connections.close_all()
