"""Which model job of each app session may go on.

A visitor's newer job replaces an older one of the same kind, running or waiting: a second
Generate during a run starts the new run, the old one ends at its next step (jobs of other kinds
wait their turn). An edit asked while the session's generation runs or waits is refused (it needs
the finished run): it is marked at the click, and says so when its turn comes. Stop ends every
job of the session at its next step; one that has not started ends before its first. A job
writes its own last update when it ends, so nothing of a stopped run reaches the page after the
page says it stopped.

    >>> tickets = JobTickets()
    >>> tickets.announce("session-a", "job-1", "generate")  # at the click, before queueing
    >>> job = tickets.begin("session-a", "job-1", "generate")
    >>> job.current()                                         # before every step: True
    >>> tickets.stop("session-a")                             # Stop: job.current() is False
    >>> job.end()

A job without an announced id (a client calling the endpoint directly) is announced when it
begins.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

GENERATE, EDIT, PROBE = "generate", "edit", "probe"
KINDS = (GENERATE, EDIT, PROBE)
MAX_ID = 64  # characters of a job id the page sends
REMEMBERED = 64  # job ids a session remembers having seen (a replaced one must not come back)
SWEEP_S = 60.0  # how often idle sessions are looked for


REFUSAL = ("the scene was still being generated when this edit was asked: steer it once the "
           "run is done (or press Stop first)")


class JobRefused(ValueError):
    """A job that may not run (an edit asked while the session's generation ran)."""


@dataclass
class _Session:
    latest: dict = field(default_factory=dict)  # kind -> the newest job announced
    live: dict = field(default_factory=dict)  # job id -> kind: announced, not ended or replaced
    seen: OrderedDict = field(default_factory=OrderedDict)  # job ids announced (the last few)
    running: str = ""  # the job running now ("" none)
    stopped: set = field(default_factory=set)  # live job ids Stop ended
    refused: set = field(default_factory=set)  # edits asked during a generation
    replacing: set = field(default_factory=set)  # live job ids that replaced a running one
    touched: float = field(default_factory=time.monotonic)


class Job:
    """One model job's view of its session: `current()` says whether it may go on."""

    def __init__(self, tickets: "JobTickets", session, job_id: str, kind: str):
        self._tickets, self.session, self.id, self.kind = tickets, session, job_id, kind

    def current(self) -> bool:
        return self._tickets.is_current(self)

    def stopped(self) -> bool:
        """Whether Stop (not a newer job) ended it."""
        return self._tickets.was_stopped(self)

    def replaced_another(self) -> bool:
        """Whether it was asked for while a job of its kind ran (which it ended)."""
        return self._tickets.was_replacing(self)

    def end(self) -> None:
        self._tickets.end(self)


class JobTickets:
    """Every session's model jobs; sessions idle longer than `idle_s` are forgotten."""

    def __init__(self, idle_s: float = 3600.0):
        self._sessions: dict = {}
        self._lock = threading.Lock()
        self._serial = itertools.count(1)
        self._swept = time.monotonic()
        self.idle_s = idle_s

    def _get(self, session) -> _Session:
        now = time.monotonic()
        if now - self._swept > SWEEP_S:
            self._swept = now
            self._sessions = {k: s for k, s in self._sessions.items()
                              if now - s.touched < self.idle_s or s.running}
        state = self._sessions.setdefault(session, _Session())
        state.touched = now
        return state

    def _job_id(self, job_id) -> str:
        if isinstance(job_id, str) and 0 < len(job_id) <= MAX_ID:
            return job_id
        return f"server-{next(self._serial)}"

    def announce(self, session, job_id, kind: str) -> str:
        """A job was asked for (the click): the newest of its kind. An edit while a generation
        runs or waits is marked refused. Returns the job's id (made here when none was sent)."""
        job_id = self._job_id(job_id)
        with self._lock:
            self._announce(self._get(session), job_id, kind)
        return job_id

    @staticmethod
    def _announce(state: _Session, job_id: str, kind: str) -> None:
        state.seen[job_id] = True
        while len(state.seen) > REMEMBERED:
            state.refused.discard(state.seen.popitem(last=False)[0])
        generating = any(k == GENERATE and j not in state.stopped
                         for j, k in state.live.items())
        if kind == EDIT and generating:
            state.refused.add(job_id)
            return
        older = state.latest.get(kind)
        if older is not None and older != state.running:
            state.live.pop(older, None)  # replaced before it started: it never will
            state.stopped.discard(older)
            state.replacing.discard(older)
        if state.running and state.live.get(state.running) == kind:
            state.replacing.add(job_id)
        state.latest[kind] = job_id
        state.live[job_id] = kind

    def begin(self, session, job_id, kind: str) -> Job:
        """The job starts running. One the page announced and a newer job replaced comes back
        not current; an edit refused at its click raises JobRefused; a job no one announced (a
        direct API call) is announced now."""
        with self._lock:
            state = self._get(session)
            if not (isinstance(job_id, str) and job_id in state.seen):
                job_id = self._job_id(job_id)
                self._announce(state, job_id, kind)
            if job_id in state.refused:
                state.refused.discard(job_id)
                raise JobRefused(REFUSAL)
            if job_id in state.live:
                state.running = job_id
        return Job(self, session, job_id, kind)

    def take_refusal(self, session, job_id: str) -> bool:
        """Whether the announced job was refused (and forget it): for a caller told at once."""
        with self._lock:
            state = self._get(session)
            refused = job_id in state.refused
            state.refused.discard(job_id)
            return refused

    def is_current(self, job: Job) -> bool:
        with self._lock:
            state = self._get(job.session)
            return (state.latest.get(job.kind) == job.id and job.id in state.live
                    and job.id not in state.stopped)

    def was_stopped(self, job: Job) -> bool:
        with self._lock:
            return job.id in self._get(job.session).stopped

    def was_replacing(self, job: Job) -> bool:
        with self._lock:
            return job.id in self._get(job.session).replacing

    def end(self, job: Job) -> None:
        with self._lock:
            state = self._get(job.session)
            state.live.pop(job.id, None)
            state.stopped.discard(job.id)
            state.replacing.discard(job.id)
            if state.running == job.id:
                state.running = ""

    def stop(self, session) -> bool:
        """Stop every job of the session, running or waiting; whether there was one."""
        with self._lock:
            state = self._get(session)
            state.stopped.update(state.live)
            return bool(state.live)
