from __future__ import annotations

from typing import Any

from tests import services


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if services.USED:
        terminalreporter.section("services used")
        for line in dict.fromkeys(services.USED):
            terminalreporter.write_line(line)
