"""What the worker's App changes in faust as it is built."""

from __future__ import annotations

from pathlib import Path

import faust.transport.consumer
import pytest

from allocator.config import Settings
from streams.app import create_app
from streams.faust_adapt import _drain_in_batches


def worker_settings(tmp_path: Path) -> Settings:
    """A worker's settings with everything it writes under `tmp_path`."""
    return Settings.from_environment(
        {
            "ALLOCATOR_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/a.db",
            "ALLOCATOR_REDIS_URL": "memory://",
            "ALLOCATOR_DATA_DIR": str(tmp_path),
        }
    )


def test_the_worker_drains_a_fetch_in_one_race(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    consumer = faust.transport.consumer.Consumer
    monkeypatch.setattr(consumer, "_drain_messages", consumer._drain_messages)  # undone after
    settings = worker_settings(tmp_path)
    create_app(settings, 4)
    assert consumer._drain_messages is _drain_in_batches


def test_faust_s_monitor_counts_no_record_of_the_worker(tmp_path: Path) -> None:
    settings = worker_settings(tmp_path)
    app = create_app(settings, 4)
    services = list(app.on_init_dependencies())  # as faust starts the app
    assert services  # faust's own services still start
    assert app.monitor not in set(app.sensors)
    app.on_init_dependencies()  # faust adds it again: removed again
    assert app.monitor not in set(app.sensors)
