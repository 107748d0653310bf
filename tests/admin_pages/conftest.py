"""The browser of the admin's browser tests (headless chromium), shared with retell_config's."""

from tests.retell_config.test_browser import browser_page  # noqa: F401 (a fixture)
