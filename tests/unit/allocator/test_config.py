"""Settings: what a worker says about itself never shows a secret."""

from __future__ import annotations

from allocator.config import Settings, masked


def test_passwords_are_masked() -> None:
    assert (
        masked("postgresql+asyncpg://u:secret@db:5432/x") == "postgresql+asyncpg://u:***@db:5432/x"
    )
    assert masked("redis://:pw@127.0.0.1:6379/0") == "redis://:***@127.0.0.1:6379/0"
    assert masked("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


def test_the_start_line_names_every_connection_without_secrets() -> None:
    settings = Settings.from_environment(
        {
            "ALLOCATOR_DATABASE_URL": "postgresql+asyncpg://app:hunter2@db/alloc",
            "ALLOCATOR_REDIS_URL": "rediss://:s3cret@cache:6380/1",
            "ALLOCATOR_QUOTA_KEY_PREFIX": "live:",
        }
    )
    line = settings.described()
    assert "hunter2" not in line and "s3cret" not in line
    assert "db/alloc" in line and "cache:6380/1" in line and "'live:'" in line
