"""``--deadline HH:MM``: the next such local time, tomorrow's when today's has passed."""
import time

import pytest

from benchmarks.common import cli


def _local(y, mo, d, h, mi):
    return time.mktime((y, mo, d, h, mi, 0, 0, 0, -1))


@pytest.mark.parametrize("text, minutes", [
    ("23:00", 30),          # later today
    ("00:50", 140),         # past midnight: tomorrow, not this morning
    ("22:30", 24 * 60),     # now itself has passed: tomorrow
    ("22:29", 24 * 60 - 1),
])
def test_the_deadline_is_the_next_such_time(text, minutes):
    now = _local(2026, 1, 15, 22, 30)  # mid-January: no clock change within a day
    assert cli.deadline(text, now=now) - now == pytest.approx(minutes * 60)


def test_no_deadline_stays_none():
    assert cli.deadline(None) is None


@pytest.mark.parametrize("bad", ["24:00", "12:60", "1230", "12:3x", "", "-1:10", "12:30:00"])
def test_a_time_that_is_not_hh_mm_is_refused_by_name(bad):
    with pytest.raises(ValueError, match="deadline") as err:
        cli.deadline(bad)
    assert repr(bad) in str(err.value)
