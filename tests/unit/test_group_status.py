"""The Burrow-style group status evaluator (pure logic, no broker)."""

from __future__ import annotations

from collectors.group_status import (
    GroupStatus,
    PartitionWindow,
    StatusTracker,
    Verdict,
    combine,
)

WINDOW = 60.0


def feed(points: list[tuple[float, int, int]], window: float = WINDOW) -> PartitionWindow:
    w = PartitionWindow(window)
    for t, position, lag in points:
        w.observe(t, position, lag)
    return w


def test_caught_up_is_ok_even_without_history():
    w = feed([(0, 100, 0)])
    assert w.evaluate(0, active=True) == Verdict(GroupStatus.OK, "caught up")


def test_zero_lag_anywhere_in_window_is_ok():
    w = feed([(0, 100, 0), (10, 100, 5), (20, 100, 9)])
    assert w.evaluate(20, active=False).status is GroupStatus.OK


def test_not_moving_with_lag_is_undecided_until_a_full_window():
    w = feed([(0, 100, 5), (10, 100, 6), (30, 100, 8)])
    verdict = w.evaluate(30, active=False)
    assert verdict.status is None and "window" in verdict.reason


def test_stop_when_no_progress_for_the_whole_window_and_no_member():
    points = [(t, 100, 5 + t // 10) for t in range(0, 71, 5)]
    w = feed(points)
    assert w.evaluate(70, active=False).status is GroupStatus.STOP
    assert w.evaluate(70, active=None).status is GroupStatus.STOP


def test_stall_when_members_are_present_but_position_is_stuck():
    w = PartitionWindow(WINDOW)
    for t in range(0, 71, 5):  # collectors evaluate at every poll
        w.observe(t, 100, 7)
        w.evaluate(t, active=True)
    verdict = w.evaluate(70, active=True)
    assert verdict.status is GroupStatus.STALL
    assert "100" in verdict.reason


def test_catch_up_after_a_restart_is_not_stall_for_one_sample():
    """Stopped for longer than the window; members join and their first commit takes a
    while (rebalance, auto-commit interval): not STALL until they were there a whole window."""
    w = PartitionWindow(WINDOW)
    for t in range(0, 91, 5):
        w.observe(t, 100, 10 + t)
        assert w.evaluate(t, active=False).status in (None, GroupStatus.STOP)
    assert w.evaluate(90, active=False).status is GroupStatus.STOP
    for t in range(95, 116, 5):  # members present, nothing committed yet
        w.observe(t, 100, 10 + t)
        verdict = w.evaluate(t, active=True)
        assert verdict.status is None and "joined" in verdict.reason
    w.observe(120, 180, 50)  # the first commit
    assert w.evaluate(120, active=True).status is GroupStatus.OK
    # members that never commit are STALL once they were there a whole window
    w2 = PartitionWindow(WINDOW)
    for t in range(0, 200, 5):
        w2.observe(t, 100, 10)
        last = w2.evaluate(t, active=t >= 95)
    assert last.status is GroupStatus.STALL


def test_running_consumer_that_stops_goes_ok_then_stop():
    w = PartitionWindow(WINDOW)
    position = 0
    for t in range(0, 100, 5):  # consuming, small varying lag
        position += 10
        w.observe(t, position, 3 + (t % 2))
    assert w.evaluate(95, active=True).status is GroupStatus.OK
    lag = 4
    for t in range(100, 150, 5):  # stopped: position frozen, lag grows
        lag += 10
        w.observe(t, position, lag)
    assert w.evaluate(149, active=False).status is not GroupStatus.STOP  # < window since stop
    for t in range(150, 170, 5):
        lag += 10
        w.observe(t, position, lag)
    assert w.evaluate(165, active=False).status is GroupStatus.STOP


def test_warn_when_lag_grows_at_every_step_while_moving():
    w = feed([(t, 10 * t, 5 + t) for t in range(0, 61, 6)])
    verdict = w.evaluate(60, active=True)
    assert verdict.status is GroupStatus.WARN and "growing" in verdict.reason


def test_moving_with_fluctuating_lag_is_ok():
    lags = [50, 60, 40, 70, 30, 55, 45, 65, 35, 50, 40]
    w = feed([(6 * i, 100 * i, lag) for i, lag in enumerate(lags)])
    assert w.evaluate(60, active=True) == Verdict(GroupStatus.OK, "consuming")


def test_rewind_is_a_warning():
    w = feed([(0, 500, 10), (10, 520, 10), (20, 100, 430)])
    verdict = w.evaluate(20, active=True)
    assert verdict.status is GroupStatus.WARN and "backwards" in verdict.reason


def test_error_reported_by_the_collector_wins():
    w = PartitionWindow(WINDOW)
    w.observe(0, 10, 0, error="committed offset 10 beyond the end 5")
    assert w.evaluate(0, active=True) == Verdict(
        GroupStatus.ERROR, "committed offset 10 beyond the end 5"
    )
    w.observe(5, 5, 0)  # fixed at the next poll
    assert w.evaluate(5, active=True).status is GroupStatus.OK


def test_window_is_thinned_and_bounded():
    w = PartitionWindow(WINDOW, slots=10)
    for t in range(0, 3600):  # one observation per second for an hour
        w.observe(float(t), t, 5)
    assert len(w.points) <= 10 + 4  # about one point per window/slots
    assert w.points[-1].time == 3599
    assert w.points[0].time <= 3599 - WINDOW
    assert w.evaluate(3599, active=True).status is GroupStatus.OK


def test_out_of_order_observations_are_ignored():
    w = feed([(10, 100, 5)])
    w.observe(5, 0, 0)
    assert [p.time for p in w.points] == [10]


def test_combine_takes_the_worst_and_respects_undecided():
    ok = Verdict(GroupStatus.OK, "ok")
    warn = Verdict(GroupStatus.WARN, "w")
    stop = Verdict(GroupStatus.STOP, "s")
    undecided = Verdict(None, "wait")
    assert combine([ok, warn, stop, ok]) is stop
    assert combine([ok, undecided]) is undecided  # cannot claim OK for the group yet
    assert combine([undecided, warn]) is warn  # something worse than OK is already known
    assert combine([ok, ok]).status is GroupStatus.OK
    assert combine([]).status is None


def test_tracker_forgets_keys_not_seen():
    tracker = StatusTracker(WINDOW)
    tracker.observe(("g", "t", 0), 0, 1, 0)
    tracker.observe(("g", "t", 1), 100, 1, 0)
    tracker.forget_older_than(50)
    assert len(tracker) == 1
    assert tracker.verdict(("g", "t", 0), 100, True).status is None
    assert tracker.verdict(("g", "t", 1), 100, True).status is GroupStatus.OK


def test_numeric_values_match_the_contract():
    from mqtop.kernel.model import GROUP_STATUS_NAMES

    assert [s.name for s in GroupStatus] == list(GROUP_STATUS_NAMES)
    assert [int(s) for s in GroupStatus] == [0, 1, 2, 3, 4]
