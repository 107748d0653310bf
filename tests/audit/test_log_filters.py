import logging

from audit.log_filters import SecretPathFilter, redact_secret_paths

TOKEN = "Xy3_kq9-ZZ0aBcDeFgHiJkLmNoPqRsTuVwXyZ012345"


def test_an_agent_token_in_a_socket_path_is_masked_and_the_call_id_kept():
    assert redact_secret_paths(f'127.0.0.1:5555 - "WebSocket /retell-llm/{TOKEN}/call_9" [accepted]') == \
        '127.0.0.1:5555 - "WebSocket /retell-llm/[agent-token]/call_9" [accepted]'


def test_the_plain_call_id_path_and_other_paths_are_left_alone():
    assert redact_secret_paths("/retell-llm/call_abcdefghijklmnopqrs") == "/retell-llm/call_abcdefghijklmnopqrs"
    assert redact_secret_paths("/admin/retell_config/agent/3/") == "/admin/retell_config/agent/3/"


def test_the_filter_masks_a_record_built_from_arguments():
    record = logging.LogRecord("uvicorn.error", logging.INFO, __file__, 1, '%s - "WebSocket %s" [accepted]',
                               ("127.0.0.1:5555", f"/retell-llm/{TOKEN}/call_9"), None)

    assert SecretPathFilter().filter(record)
    assert TOKEN not in record.getMessage()
    assert "/retell-llm/[agent-token]/call_9" in record.getMessage()
