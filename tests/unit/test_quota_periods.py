"""Quota periods: the current window of each period, and until when a metric is exhausted."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from backbone.modules.quotas.model import END_OF_TIME, QuotaPeriod, exhausted_until, period_window

NOW = datetime(2026, 12, 31, 17, 45, 12, 345000, tzinfo=UTC)  # a Thursday


@pytest.mark.parametrize(
    ("period", "start", "end"),
    [
        (QuotaPeriod.Hour, datetime(2026, 12, 31, 17, tzinfo=UTC), datetime(2026, 12, 31, 18, tzinfo=UTC)),
        (QuotaPeriod.Day, datetime(2026, 12, 31, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)),
        (QuotaPeriod.Week, datetime(2026, 12, 28, tzinfo=UTC), datetime(2027, 1, 4, tzinfo=UTC)),
        (QuotaPeriod.Month, datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)),
        (QuotaPeriod.Year, datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)),
        (QuotaPeriod.Total, None, END_OF_TIME),
    ],
)
def test_each_period_is_the_current_calendar_window(
    period: QuotaPeriod, start: datetime | None, end: datetime
) -> None:
    assert period_window(period, NOW) == (start, end)


def test_a_month_that_is_not_december_ends_with_the_next_month() -> None:
    assert period_window(QuotaPeriod.Month, datetime(2026, 2, 14, tzinfo=UTC)) == (
        datetime(2026, 2, 1, tzinfo=UTC),
        datetime(2026, 3, 1, tzinfo=UTC),
    )


def test_the_latest_end_among_exhausted_quotas_wins() -> None:
    day_end, week_end = datetime(2027, 1, 1, tzinfo=UTC), datetime(2027, 1, 4, tzinfo=UTC)
    assert exhausted_until([(3, 3, day_end), (5, 10, week_end)]) == day_end
    assert exhausted_until([(3, 3, day_end), (10, 10, week_end)]) == week_end
    assert exhausted_until([(2, 3, day_end)]) is None
    assert exhausted_until([(0, 0, END_OF_TIME)]) == END_OF_TIME
    assert exhausted_until([]) is None
