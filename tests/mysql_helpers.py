"""Reasons shared by the tests that do not apply to MySQL, so every such skip says exactly why."""

from __future__ import annotations

import pytest

from llm_proxy_db.config.settings import Settings

NOT_TRANSACTIONAL = (
    "MySQL commits each DDL statement, so a failed or killed revision cannot roll back "
    "(all-or-nothing does not apply); resumability instead: tests/test_mysql_resume.py"
)
NOT_YET = "not implemented for MySQL yet (issue 10): {what}"


def skip_on_mysql(settings: Settings, reason: str) -> None:
    """Skip the running test on MySQL with ``reason``."""
    if settings.is_mysql:
        pytest.skip(reason)
