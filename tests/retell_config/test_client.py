"""The Retell client against the loopback fake: keys, pagination, bounded retries of
reads only, and the circuit per company."""

import pytest

from retell_config.client import RetellClient, RetellRejected, RetellUnavailable, circuit_for


@pytest.fixture
def client(company_a, fake_retell):
    with RetellClient(company_a) as client:
        yield client


@pytest.mark.django_db
def test_list_agents_follows_pagination_keys_until_the_last_page(settings, client, fake_retell):
    settings.RETELL_PAGE_SIZE = 2
    for n in range(5):
        fake_retell.add_agent(f"agent_{n:03d}")

    agents = client.list_agents()

    assert sorted(a["agent_id"] for a in agents) == [f"agent_{n:03d}" for n in range(5)]
    pages = [r for r in fake_retell.requests if r.path == "/v2/list-agents"]
    assert [r.method for r in pages] == ["POST", "POST", "POST"]
    assert [r.query.get("pagination_key") for r in pages] == [None, "agent_003", "agent_001"]
    assert all(r.query["limit"] == "2" for r in pages)


@pytest.mark.django_db
def test_llms_and_phone_numbers_are_listed_page_by_page_with_get(settings, client, fake_retell):
    settings.RETELL_PAGE_SIZE = 1
    fake_retell.add_llm("llm_a")
    fake_retell.add_llm("llm_b")
    fake_retell.add_phone_number("+493083793369", agent_id="agent_x")
    fake_retell.add_phone_number("+493083793370")

    assert {llm["llm_id"] for llm in client.list_llms()} == {"llm_a", "llm_b"}
    assert {n["phone_number"] for n in client.list_phone_numbers()} == {"+493083793369", "+493083793370"}
    assert fake_retell.lines() == ["GET /v2/list-retell-llms"] * 2 + ["GET /v2/list-phone-numbers"] * 2


@pytest.mark.django_db
def test_the_company_key_is_used_before_the_platform_key(company_a, fake_retell):
    company_a.retell_api_key = "company-own-key-123456"
    company_a.save()
    fake_retell.api_keys = {"company-own-key-123456"}
    fake_retell.add_agent("agent_own")

    with RetellClient(company_a) as client:
        client.get_agent("agent_own")

    assert fake_retell.requests[-1].headers["Authorization"] == "Bearer company-own-key-123456"


@pytest.mark.django_db
def test_a_read_is_retried_after_a_5xx_and_succeeds(client, fake_retell):
    fake_retell.add_agent("agent_a")
    fake_retell.fail(503, method="GET", times=2)

    assert client.get_agent("agent_a")["agent_id"] == "agent_a"
    assert fake_retell.lines() == ["GET /get-agent/agent_a"] * 3
    assert circuit_for(client.company.pk).state().status_label == "Connected"


@pytest.mark.django_db
def test_retries_are_bounded(client, fake_retell):
    fake_retell.add_agent("agent_a")
    fake_retell.fail(500, method="GET", times=10)

    with pytest.raises(RetellUnavailable):
        client.get_agent("agent_a")
    assert len(fake_retell.requests) == 3  # one try and RETELL_MAX_RETRIES=2 retries


@pytest.mark.django_db
def test_an_update_is_never_repeated_after_a_5xx(client, fake_retell):
    fake_retell.add_agent("agent_a")
    fake_retell.fail(503, method="PATCH")

    with pytest.raises(RetellUnavailable):
        client.update_agent("agent_a", {"agent_name": "Renamed"})
    assert fake_retell.lines() == ["PATCH /update-agent/agent_a"]


@pytest.mark.django_db
def test_an_update_that_times_out_is_not_repeated(client, fake_retell):
    fake_retell.add_llm("llm_a")
    fake_retell.stall(2.0, method="PATCH")

    with pytest.raises(RetellUnavailable, match="did not answer"):
        client.update_llm("llm_a", {"general_prompt": "New"})
    assert fake_retell.lines() == ["PATCH /update-retell-llm/llm_a"]


@pytest.mark.django_db
def test_a_4xx_is_a_refusal_not_an_outage(client, fake_retell):
    with pytest.raises(RetellRejected, match="404"):
        client.get_agent("agent_missing")
    assert len(fake_retell.requests) == 1
    assert circuit_for(client.company.pk).state().status_label == "Connected"


@pytest.mark.django_db
def test_the_circuit_opens_after_repeated_failures_and_then_sends_nothing(settings, client, fake_retell):
    settings.RETELL_MAX_RETRIES = 0
    fake_retell.fail(503, times=100)
    for _ in range(settings.RETELL_CIRCUIT_FAILURES):
        with pytest.raises(RetellUnavailable):
            client.get_agent("agent_a")
    sent = len(fake_retell.requests)

    with pytest.raises(RetellUnavailable, match="circuit open"):
        client.get_agent("agent_a")

    assert len(fake_retell.requests) == sent
    assert circuit_for(client.company.pk).state().status_label == "Disconnected"


@pytest.mark.django_db
def test_the_circuit_is_per_company(settings, company_a, company_b, fake_retell):
    settings.RETELL_MAX_RETRIES = 0
    fake_retell.fail(503, times=settings.RETELL_CIRCUIT_FAILURES)
    fake_retell.add_agent("agent_b")
    with RetellClient(company_a) as client_a:
        for _ in range(settings.RETELL_CIRCUIT_FAILURES):
            with pytest.raises(RetellUnavailable):
                client_a.get_agent("agent_b")

    with RetellClient(company_b) as client_b:
        assert client_b.get_agent("agent_b")["agent_id"] == "agent_b"
    assert circuit_for(company_a.pk).state().status_label == "Disconnected"
    assert circuit_for(company_b.pk).state().status_label == "Connected"


@pytest.mark.django_db
def test_without_any_key_the_client_says_so(settings, company_a):
    settings.RETELL_API_KEY = ""
    with pytest.raises(Exception, match="No Retell API key"):
        RetellClient(company_a)
