# Copyright (c) virtops.libvirt contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Retention policies: keep-last, keep-daily, keep-weekly, keep-monthly."""

from __future__ import annotations

import datetime

import pytest

from ansible_collections.virtops.libvirt.plugins.module_utils._retention import policy, to_prune


def _names(start, days, hours=(1,)):
    """One backup at each of ``hours`` (UTC) on ``days`` days from ``start``, oldest first."""
    first = datetime.datetime.strptime(start, '%Y-%m-%d')
    return [(first + datetime.timedelta(days=day, hours=hour)).strftime('%Y%m%dT%H%M%SZ')
            for day in range(days) for hour in hours]


def _kept(names, **kwargs):
    pruned = to_prune(names, policy(**kwargs))
    return [name for name in names if name not in pruned]


def test_all_zero_keeps_everything():
    names = _names('2026-11-01', 5)
    assert to_prune(names, policy()) == []


def test_keep_last_is_the_old_count():
    names = _names('2026-11-01', 5)
    assert _kept(names, last=2) == names[-2:]


def test_daily_keeps_the_newest_of_each_day():
    names = _names('2026-11-01', 4, hours=(1, 13))  # two a day
    assert _kept(names, daily=3) == ['20261102T130000Z', '20261103T130000Z', '20261104T130000Z']


def test_daily_counts_days_that_have_a_backup_not_calendar_days():
    names = ['20261101T010000Z', '20261105T010000Z', '20261110T010000Z']
    assert _kept(names, daily=2) == names[1:]


def test_weekly_and_monthly_after_daily():
    # Every day from 2026-09-01 to 2026-11-29 (a Sunday), one backup at 01:00.
    names = _names('2026-09-01', 90)
    kept = _kept(names, daily=7, weekly=4, monthly=3)
    assert kept[-7:] == names[-7:]                       # the last 7 days
    weekly = kept[-11:-7]                                 # then the newest of 4 more ISO weeks
    assert weekly == ['20261101T010000Z', '20261108T010000Z', '20261115T010000Z',
                      '20261122T010000Z']                 # Sundays: the newest of their week
    # Then the newest of up to 3 more months: November is covered; the newest October backup
    # not already decided is 10-25 (10-26..10-31 are the older ones of a kept week); September.
    assert kept[:-11] == ['20260930T010000Z', '20261025T010000Z']


def test_keep_last_counts_for_the_periods():
    names = _names('2026-11-01', 3, hours=(1, 13))
    # The 2 newest are both of 11-03: that day is covered, daily then takes 11-02 and 11-01.
    assert _kept(names, last=2, daily=2) == [
        '20261101T130000Z', '20261102T130000Z', '20261103T010000Z', '20261103T130000Z']


@pytest.mark.parametrize('kwargs', [dict(daily=1), dict(weekly=1), dict(monthly=1), dict(last=1)])
def test_the_newest_is_never_pruned(kwargs):
    names = _names('2026-11-01', 10, hours=(1, 2, 3))
    assert names[-1] in _kept(names, **kwargs)


def test_nothing_to_prune_in_an_empty_domain():
    assert to_prune([], policy(daily=3)) == []
