"""The health pages' view of the consumer, before it has started."""

from __future__ import annotations

from pathlib import Path

from allocator.config import Settings
from streams.app import create_app
from streams.web import assignment, is_ready


def test_a_worker_whose_consumer_has_not_started_is_not_ready(tmp_path: Path) -> None:
    # The web server answers before faust starts the consumer thread: a probe
    # polling /ready in that moment got a 500 (ConsumerNotStarted).
    settings = Settings.from_environment(
        {
            "ALLOCATOR_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/a.db",
            "ALLOCATOR_REDIS_URL": "memory://",
            "ALLOCATOR_DATA_DIR": str(tmp_path),
        }
    )
    app = create_app(settings, 4)
    assert assignment(app) == set()
    assert is_ready(app, {}) is False
