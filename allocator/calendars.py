"""Which local days a client sends on: public holidays (the `holidays`
package's calendars, CONTRACT.md section 9) and its own blackout dates."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache

import holidays


@lru_cache(maxsize=1)
def supported_countries() -> frozenset[str]:
    return frozenset(holidays.list_supported_countries())


@lru_cache(maxsize=1024)
def public_holidays(country: str, year: int) -> dict[date, str]:
    """The country's public holidays of one year, by date (cached: a batch asks again and again)."""
    return dict(holidays.country_holidays(country, years=year).items())


@dataclass(frozen=True)
class Calendar:
    """A client's closed days: its country's public holidays and its blackout dates."""

    country: str | None = None
    blackout: frozenset[date] = field(default_factory=frozenset)

    def closed(self, day: date) -> bool:
        return day in self.blackout or (
            self.country is not None and day in public_holidays(self.country, day.year)
        )

    def why_closed(self, day: date) -> str:
        """`2026-12-25 is a public holiday in US (Christmas Day)`, or a blackout date."""
        if day in self.blackout:
            return f"{day.isoformat()} is a blackout date"
        assert self.country is not None
        name = public_holidays(self.country, day.year).get(day, "a holiday")
        return f"{day.isoformat()} is a public holiday in {self.country} ({name})"


OPEN = Calendar()
