from allocator.replay.summary import Summary


def test_balance_is_mean_spread_across_equal_limit_resources() -> None:
    summary = Summary({"name": "t"})
    summary.limits = {("c", "linkedin", "a"): 17, ("c", "linkedin", "b"): 17,
                      ("c", "linkedin", "solo"): 5}
    summary.usage.update({
        ("c", "linkedin", "a", "2026-11-27"): 3, ("c", "linkedin", "b", "2026-11-27"): 2,
        ("c", "linkedin", "a", "2026-11-30"): 4,  # b unused that day: spread 4
        ("c", "linkedin", "solo", "2026-11-27"): 5,  # no peer with its limit: not counted
    })
    assert summary.balance() == 2.5  # (1 + 4) / 2


def test_capacity_needed_is_the_busiest_day_against_capacity() -> None:
    summary = Summary({"name": "t"})
    summary.capacity = {("c", "email"): 70, ("c", "direct_mail"): None}
    summary.demand.update({("c", "email", "2026-11-27"): 40, ("c", "email", "2026-11-30"): 95,
                           ("c", "direct_mail", "2026-11-27"): 500})
    rows = {r["channel"]: r for r in summary.capacity_needed()}
    assert rows["email"] == {"client_id": "c", "channel": "email", "peak_day": "2026-11-30",
                             "peak_demand": 95, "daily_capacity": 70, "shortfall": 25}
    assert rows["direct_mail"]["shortfall"] == 0  # unlimited
