"""The open-model dispatcher: each iteration of a flow starts as its own greenlet, on schedule.

One scheduling loop per flow sleeps until the next start is due (against a monotonic clock, each
due time computed from the run's start, so nothing drifts) and hands the start over at once; it
never waits for an iteration. When it wakes late it catches up, starting every due iteration
immediately, and those count as late. A start that finds `max_in_flight` iterations running
waits in a queue of at most `max_queued` starts (it counts as queued, and as late when it waits
more than 10 ms); a start that finds the queue full too is dropped.

A warm-up (a capacity search's step) is the schedule's first `warm_up_s`: its starts run like any
other, but are accounted in a record of their own, so the run's start accounting, its rates and
its offsets cover the measured window after it.

This module uses gevent but not Locust, so its accounting can be tested with a fake clock.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import gevent
import gevent.local
from gevent.pool import Group

from loadtests.arrival.latency import ArrivalRecorder, FlowLatencies, IterationLatency
from loadtests.arrival.shapes import WHOLE, Share, profile_for, start_offsets
from loadtests.flows import Flow, FlowContext, get_flow
from scenarios.schema import Scenario

LATE_AFTER_S = 0.010
log = logging.getLogger(__name__)


class Clock(Protocol):
    """Monotonic time and a way to wait for it."""

    def now_s(self) -> float: ...

    def sleep_s(self, duration_s: float) -> None: ...


class GeventClock:
    """The monotonic clock, slept on cooperatively."""

    def now_s(self) -> float:
        return time.monotonic()

    def sleep_s(self, duration_s: float) -> None:
        gevent.sleep(duration_s)


@dataclass(frozen=True)
class Start:
    """One scheduled start: its number in this process's schedule and when it is due (clock time)."""

    index: int
    intended_s: float
    queued: bool = False
    warm_up: bool = False


Spawn = Callable[[Callable[[], None]], object]
RunIteration = Callable[[Start, float], None]


class FlowDispatcher:
    """Start one flow's iterations on schedule within its in-flight cap, and account for every start."""

    def __init__(
        self,
        name: str,
        offsets_s: Iterable[float],
        run_iteration: RunIteration,
        *,
        record: FlowLatencies,
        clock: Clock,
        spawn: Spawn,
        max_in_flight: int,
        max_queued: int = 0,
        late_after_s: float = LATE_AFTER_S,
        on_error: Callable[[str, Exception], None] | None = None,
        warm_up_s: float = 0.0,
        warm_up_record: FlowLatencies | None = None,
    ) -> None:
        self.name = name
        self._offsets_s = offsets_s
        self._run_iteration = run_iteration
        self._record = record
        self._clock = clock
        self._spawn = spawn
        self._max_in_flight = max_in_flight
        self._max_queued = max_queued
        self._late_after_s = late_after_s
        self._on_error = on_error
        self._warm_up_s = warm_up_s
        self._warm_up_record = warm_up_record or FlowLatencies()
        self._queue: deque[Start] = deque()
        self._t0_s = 0.0
        self.in_flight = 0
        self.schedule_done = False
        self.stopped = False

    @property
    def finished(self) -> bool:
        """Whether every start is due and no iteration is running or waiting."""
        return self.schedule_done and self.in_flight == 0 and not self._queue

    @property
    def queued(self) -> int:
        return len(self._queue)

    def run(self, t0_s: float) -> None:
        """Dispatch every start of the schedule, `t0_s` being the run's start on the clock."""
        self._t0_s = t0_s
        for index, offset_s in enumerate(self._offsets_s):
            intended_s = t0_s + offset_s
            while not self.stopped and (wait_s := intended_s - self._clock.now_s()) > 0:
                self._clock.sleep_s(wait_s)
            if self.stopped:
                break
            self._due(Start(index, intended_s, warm_up=offset_s < self._warm_up_s))
        self.schedule_done = True

    def _accounting(self, start: Start) -> tuple[FlowLatencies, float]:
        """The record a start counts in, and where its offsets count from (the measured window's
        start after a warm-up)."""
        if start.warm_up:
            return self._warm_up_record, self._t0_s
        return self._record, self._t0_s + self._warm_up_s

    def stop(self) -> None:
        """Start nothing more; starts still waiting for a slot count as dropped."""
        self.stopped = True
        for start in self._queue:
            self._accounting(start)[0].counters.dropped += 1
        self._queue.clear()

    def _due(self, start: Start) -> None:
        record, origin_s = self._accounting(start)
        counters = record.counters
        counters.scheduled += 1
        counters.last_intended_offset_s = max(counters.last_intended_offset_s, start.intended_s - origin_s)
        if self.in_flight < self._max_in_flight:
            self._launch(start)
        elif len(self._queue) < self._max_queued:
            counters.queued += 1
            self._queue.append(Start(start.index, start.intended_s, queued=True, warm_up=start.warm_up))
        else:
            counters.dropped += 1

    def _launch(self, start: Start) -> None:
        # Counted before the greenlet runs, so that starts due in the same instant see the cap.
        self.in_flight += 1
        self._spawn(lambda: self._iterate(start))

    def _iterate(self, start: Start) -> None:
        started_s = self._clock.now_s()
        delay_s = started_s - start.intended_s
        record, origin_s = self._accounting(start)
        counters = record.counters
        counters.started += 1
        counters.last_start_offset_s = max(counters.last_start_offset_s, started_s - origin_s)
        if delay_s > self._late_after_s:
            counters.late += 1
            if not start.queued:
                counters.late_unqueued += 1
        record.start_delay.record_s(delay_s)
        try:
            self._run_iteration(start, delay_s)
        except gevent.GreenletExit:
            counters.unfinished += 1
            raise
        except Exception as error:
            counters.failed += 1
            record.iteration.record_s(self._clock.now_s() - start.intended_s)
            if self._on_error is not None:
                self._on_error(self.name, error)
        else:
            counters.completed += 1
            record.iteration.record_s(self._clock.now_s() - start.intended_s)
        finally:
            self.in_flight -= 1
            if self._queue and not self.stopped:
                self._launch(self._queue.popleft())


_current = gevent.local.local()


def current_iteration() -> IterationLatency | None:
    """Return the iteration running in this greenlet, if any (for the request listener)."""
    return getattr(_current, "iteration", None)


def set_current_iteration(iteration: IterationLatency | None) -> None:
    """Mark this greenlet as running `iteration` (None: no iteration)."""
    _current.iteration = iteration


class ArrivalEngine:
    """Run every flow of a scenario on its open-model schedule in this process."""

    def __init__(
        self,
        scenario: Scenario,
        *,
        client: Any,
        recorder: ArrivalRecorder,
        share: Share = WHOLE,
        clock: Clock | None = None,
        flows: Mapping[str, Flow] | None = None,
        on_error: Callable[[str, Exception], None] | None = None,
        warm_up_s: float = 0.0,
        warm_up_recorder: ArrivalRecorder | None = None,
    ) -> None:
        self.scenario = scenario
        self.share = share
        self.warm_up_s = warm_up_s
        self._warm_up_recorder = warm_up_recorder or ArrivalRecorder()
        self._client = client
        self._recorder = recorder
        self._clock = clock or GeventClock()
        self._flows = flows
        self._on_error = on_error
        self._loops = Group()
        self._iterations = Group()
        self.dispatchers: list[FlowDispatcher] = []
        self.t0_s = 0.0
        self.t0_epoch_s = 0.0

    @property
    def finished(self) -> bool:
        """Whether every flow has started its last iteration and all of them have ended."""
        return bool(self.dispatchers) and all(dispatcher.finished for dispatcher in self.dispatchers)

    @property
    def in_flight(self) -> int:
        return sum(dispatcher.in_flight for dispatcher in self.dispatchers)

    def start(self, delay_s: float = 0.0) -> None:
        """Start one scheduling loop per flow; the schedule's clock starts `delay_s` from now.

        Every schedule is computed before the clock starts: computing one flow's thousands of
        offsets after t0 would make the first starts of the flows after it late. A delay leaves
        the process time to finish what it is doing (a worker: Locust's own start) before the
        first start is due.
        """
        profile = profile_for(self.scenario.shape)
        for spec in self.scenario.flows:
            flow = self._flows[spec.flow] if self._flows is not None else get_flow(spec.flow)
            offsets_s = start_offsets(
                profile,
                self.scenario.rate_per_s(spec),
                share=self.share,
                arrivals=self.scenario.arrivals,
                seed=self.scenario.seed,
            )
            dispatcher = FlowDispatcher(
                spec.name,
                offsets_s,
                self._iteration_runner(spec.name, flow, spec.params),
                record=self._recorder.flow(spec.name),
                clock=self._clock,
                spawn=self._iterations.spawn,
                max_in_flight=spec.max_in_flight,
                max_queued=spec.max_queued,
                on_error=self._on_error,
                warm_up_s=self.warm_up_s,
                warm_up_record=self._warm_up_recorder.flow(spec.name),
            )
            self.dispatchers.append(dispatcher)
        self.t0_s = self._clock.now_s() + delay_s
        self.t0_epoch_s = time.time() + delay_s
        for dispatcher in self.dispatchers:
            self._loops.spawn(dispatcher.run, self.t0_s)
        log.info(
            "arrival engine started: scenario %s, %d flow(s), share %d of %d",
            self.scenario.name,
            len(self.dispatchers),
            self.share.index + 1,
            self.share.count,
        )

    def stop(self, timeout_s: float = 5.0) -> None:
        """Start nothing more and end the iterations still running (they count as unfinished)."""
        for dispatcher in self.dispatchers:
            dispatcher.stop()
        self._loops.kill(block=True, timeout=timeout_s)
        self._iterations.kill(block=True, timeout=timeout_s)

    def _iteration_runner(self, name: str, flow: Flow, params: Mapping[str, Any]) -> RunIteration:
        def run(start: Start, delay_s: float) -> None:
            set_current_iteration(IterationLatency(delay_s, flow=name, warm_up=start.warm_up))
            intended_epoch_s = self.t0_epoch_s + (start.intended_s - self.t0_s)
            flow(
                FlowContext(
                    client=self._client,
                    intended_start_s=intended_epoch_s,
                    flow=name,
                    iteration=start.index,
                    params=params,
                )
            )

        return run
