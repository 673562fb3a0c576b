"""Start accounting of the dispatcher, driven by a fake clock: no real time passes."""

from __future__ import annotations

from collections.abc import Callable

import gevent
import pytest

from loadtests.arrival.dispatcher import LATE_AFTER_S, FlowDispatcher, Start
from loadtests.arrival.latency import FlowLatencies


class FakeClock:
    """A clock that moves only when slept on, and can be made to overshoot (a generator hiccup)."""

    def __init__(self, hiccups: dict[float, float] | None = None, now_s: float = 100.0) -> None:
        self.now = now_s
        self._hiccups = dict(hiccups or {})

    def now_s(self) -> float:
        return self.now

    def sleep_s(self, duration_s: float) -> None:
        target = self.now + duration_s
        for at_s, extra_s in list(self._hiccups.items()):
            if self.now < at_s <= target:
                target += extra_s
                del self._hiccups[at_s]
        self.now = target


class HeldSpawn:
    """Keep spawned iterations until the test runs them, as if they were still in flight."""

    def __init__(self) -> None:
        self.pending: list[Callable[[], None]] = []

    def __call__(self, run: Callable[[], None]) -> None:
        self.pending.append(run)

    def run_next(self) -> None:
        self.pending.pop(0)()


def immediate(run: Callable[[], None]) -> None:
    run()


def dispatcher(
    offsets_s: list[float],
    *,
    clock: FakeClock,
    spawn: Callable[[Callable[[], None]], None] = immediate,
    run_iteration: Callable[[Start, float], None] | None = None,
    max_in_flight: int = 100,
    max_queued: int = 0,
    record: FlowLatencies | None = None,
    on_error: Callable[[str, Exception], None] | None = None,
) -> FlowDispatcher:
    return FlowDispatcher(
        "flow",
        offsets_s,
        run_iteration or (lambda start, delay_s: None),
        record=record or FlowLatencies(),
        clock=clock,
        spawn=spawn,
        max_in_flight=max_in_flight,
        max_queued=max_queued,
        on_error=on_error,
    )


def every(interval_s: float, count: int) -> list[float]:
    return [interval_s * n for n in range(1, count + 1)]


def test_starts_on_schedule_are_neither_late_nor_dropped() -> None:
    record = FlowLatencies()
    delays: list[float] = []
    flow = dispatcher(
        every(0.01, 100),
        clock=FakeClock(),
        record=record,
        run_iteration=lambda start, delay_s: delays.append(delay_s),
    )

    flow.run(t0_s=100.0)

    counters = record.counters
    assert (counters.scheduled, counters.started, counters.completed) == (100, 100, 100)
    assert (counters.late, counters.dropped, counters.queued, counters.unfinished) == (0, 0, 0, 0)
    assert max(delays) == pytest.approx(0.0)
    assert counters.last_intended_offset_s == pytest.approx(1.0)
    assert flow.finished


def test_a_late_wake_up_catches_up_at_once_and_does_not_shift_later_starts() -> None:
    record = FlowLatencies()
    delays: dict[int, float] = {}
    # The scheduler oversleeps by 0.505 s when it passes t0 + 1.0 s.
    flow = dispatcher(
        every(0.01, 200),
        clock=FakeClock(hiccups={101.0: 0.505}),
        record=record,
        run_iteration=lambda start, delay_s: delays.__setitem__(start.index, delay_s),
    )

    flow.run(t0_s=100.0)

    counters = record.counters
    assert counters.started == 200
    assert counters.dropped == 0
    # Starts due from 1.0 s to 1.5 s all begin at 1.505 s; the one due at 1.5 s is within 10 ms.
    late = [index for index, delay_s in delays.items() if delay_s > LATE_AFTER_S]
    assert late == list(range(99, 149))
    assert counters.late == counters.late_unqueued == 50
    assert delays[99] == pytest.approx(0.505)
    assert all(delays[index] == pytest.approx(0.0) for index in range(150, 200))


def test_lateness_counts_only_beyond_ten_milliseconds() -> None:
    record = FlowLatencies()
    clock = FakeClock(now_s=0.0)
    spawn = HeldSpawn()
    flow = dispatcher([0.0, 0.0], clock=clock, spawn=spawn, record=record)
    flow.run(t0_s=0.0)

    clock.now = LATE_AFTER_S
    spawn.run_next()
    clock.now = LATE_AFTER_S + 1e-6
    spawn.run_next()

    assert (record.counters.started, record.counters.late) == (2, 1)


def test_starts_beyond_the_cap_are_dropped_without_a_queue() -> None:
    record = FlowLatencies()
    spawn = HeldSpawn()
    flow = dispatcher(every(0.01, 10), clock=FakeClock(), spawn=spawn, record=record, max_in_flight=3)

    flow.run(t0_s=100.0)

    assert (record.counters.scheduled, record.counters.dropped, flow.in_flight) == (10, 7, 3)
    assert len(spawn.pending) == 3


def test_queued_starts_wait_for_a_free_slot_and_count_as_queued_and_late() -> None:
    record = FlowLatencies()
    clock = FakeClock()
    spawn = HeldSpawn()
    delays: list[float] = []
    flow = dispatcher(
        every(0.01, 10),
        clock=clock,
        spawn=spawn,
        record=record,
        run_iteration=lambda start, delay_s: delays.append(delay_s),
        max_in_flight=2,
        max_queued=3,
    )
    flow.run(t0_s=100.0)
    assert (record.counters.queued, record.counters.dropped, flow.queued) == (3, 5, 3)

    clock.now = 100.5
    while spawn.pending:
        spawn.run_next()

    counters = record.counters
    assert (counters.started, counters.completed, counters.late, counters.late_unqueued) == (5, 5, 5, 2)
    # The queued starts (due at 30, 40 and 50 ms) began at 500 ms, in the order they were due.
    assert delays[2:] == pytest.approx([0.47, 0.46, 0.45])
    assert flow.finished


def test_stop_starts_nothing_more_and_drops_what_waits() -> None:
    record = FlowLatencies()
    spawn = HeldSpawn()
    flow = dispatcher(
        every(0.01, 5), clock=FakeClock(), spawn=spawn, record=record, max_in_flight=1, max_queued=10
    )
    flow.run(t0_s=100.0)

    flow.stop()
    spawn.run_next()

    assert (record.counters.started, record.counters.queued, record.counters.dropped) == (1, 4, 4)
    assert not spawn.pending


def test_a_failing_iteration_is_counted_reported_and_frees_its_slot() -> None:
    record = FlowLatencies()
    errors: list[tuple[str, Exception]] = []

    def fail(start: Start, delay_s: float) -> None:
        raise RuntimeError("boom")

    flow = dispatcher(
        every(0.01, 3),
        clock=FakeClock(),
        record=record,
        run_iteration=fail,
        max_in_flight=1,
        on_error=lambda name, error: errors.append((name, error)),
    )

    flow.run(t0_s=100.0)

    assert (record.counters.failed, record.counters.completed, record.counters.dropped) == (3, 0, 0)
    assert [name for name, _ in errors] == ["flow"] * 3
    assert record.iteration.count == 3
    assert flow.in_flight == 0


def test_an_iteration_killed_at_the_end_counts_as_unfinished() -> None:
    record = FlowLatencies()

    def killed(start: Start, delay_s: float) -> None:
        raise gevent.GreenletExit

    flow = dispatcher([0.01], clock=FakeClock(), record=record, run_iteration=killed)

    with pytest.raises(gevent.GreenletExit):
        flow.run(t0_s=100.0)

    assert (record.counters.unfinished, record.counters.completed, record.iteration.count) == (1, 0, 0)


def test_iteration_durations_run_from_the_intended_start() -> None:
    record = FlowLatencies()
    clock = FakeClock()
    spawn = HeldSpawn()
    flow = dispatcher(
        [0.01], clock=clock, spawn=spawn, record=record, run_iteration=lambda start, delay_s: None
    )
    flow.run(t0_s=100.0)

    clock.now = 100.25
    spawn.run_next()

    assert record.iteration.max_us == 240_000
    assert record.start_delay.max_us == 240_000


def test_the_unit_tests_run_without_gevent_monkey_patching() -> None:
    import gevent.monkey

    assert not gevent.monkey.is_anything_patched()


def test_the_warm_up_counts_apart_and_the_measured_window_starts_after_it() -> None:
    """10 starts/s for 3 s with a 1 s warm-up; a 50 ms hiccup inside the warm-up makes late starts
    there, none in the measured window, whose offsets count from its own start."""
    clock = FakeClock(hiccups={100.45: 0.05})
    record, warm_up = FlowLatencies(), FlowLatencies()
    flow = FlowDispatcher(
        "flow",
        every(0.1, 30),
        lambda start, delay_s: None,
        record=record,
        clock=clock,
        spawn=immediate,
        max_in_flight=100,
        warm_up_s=1.0,
        warm_up_record=warm_up,
    )
    flow.run(clock.now_s())

    assert (warm_up.counters.scheduled, record.counters.scheduled) == (
        9,
        21,
    )  # 0.1 .. 0.9 s, then 1.0 .. 3.0 s
    assert warm_up.counters.late_unqueued >= 1
    assert record.counters.late == 0
    assert record.counters.last_intended_offset_s == pytest.approx(2.0)
    assert record.start_delay.count == 21
