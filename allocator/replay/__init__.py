"""Backtesting: run history through the allocator and compare rules."""
