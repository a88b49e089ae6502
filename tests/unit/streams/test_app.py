"""What the worker's App changes in faust as it is built and started."""

from __future__ import annotations

from pathlib import Path

import faust.transport.consumer
import pytest

from allocator.config import Settings
from streams.app import create_app
from streams.faust_adapt import _drain_in_batches


def _settings(tmp_path: Path) -> Settings:
    return Settings.from_environment(
        {
            "ALLOCATOR_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/a.db",
            "ALLOCATOR_REDIS_URL": "memory://",
            "ALLOCATOR_DATA_DIR": str(tmp_path),
        }
    )


def test_the_worker_drains_a_fetch_in_one_race_and_runs_no_faust_monitor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    consumer = faust.transport.consumer.Consumer
    monkeypatch.setattr(consumer, "_drain_messages", consumer._drain_messages)  # undone after
    app = create_app(_settings(tmp_path), 4)
    assert consumer._drain_messages is _drain_in_batches
    app.on_init_dependencies()
    # faust's Monitor is no sensor of the worker's (it counted every event),
    # and is still there for faust's direct calls
    assert app.monitor not in set(app.sensors)
    app.monitor.track_tp_end_offset(faust.types.TP("leads", 0), 10)
