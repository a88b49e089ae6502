"""The database: SQLAlchemy 2 async tables and the queries the allocator makes."""

from allocator.store.database import Database

__all__ = ["Database"]
