"""Which model job of each app session may go on.

A visitor has one model job at a time. A newer job replaces the one running or waiting (a
second Generate during a run starts the new run; the old one ends at its next step), except that
an edit never replaces a generation (an edit needs the finished run). Stop ends the job at its
next step. The job itself writes its last update when it ends, so nothing of a stopped run
reaches the page after the page says it stopped.

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
from dataclasses import dataclass, field

GENERATE, EDIT, PROBE = "generate", "edit", "probe"
KINDS = (GENERATE, EDIT, PROBE)
MAX_ID = 64  # characters of a job id the page sends


class JobRefused(ValueError):
    """A job that may not start now (an edit while the session's generation runs)."""


@dataclass
class _Session:
    latest: str = ""  # the newest job announced
    kinds: dict = field(default_factory=dict)  # job id -> kind, announced and not yet ended
    running: str = ""  # the job running now ("" none)
    replacing: set = field(default_factory=set)  # job ids announced while another one ran
    stopped: set = field(default_factory=set)  # job ids Stop ended
    touched: float = field(default_factory=time.monotonic)


class Job:
    """One model job's view of its session: `current()` says whether it may go on."""

    def __init__(self, tickets: "JobTickets", session: str, job_id: str):
        self._tickets, self.session, self.id = tickets, session, job_id

    def current(self) -> bool:
        return self._tickets.is_current(self.session, self.id)

    def stopped(self) -> bool:
        """Whether Stop (not a newer job) ended it."""
        return self._tickets.was_stopped(self.session, self.id)

    def replaced_another(self) -> bool:
        """Whether it was asked for while another job of its session ran (which it ended)."""
        return self._tickets.was_replacing(self.session, self.id)

    def end(self) -> None:
        self._tickets.end(self.session, self.id)


class JobTickets:
    """Every session's model jobs; sessions idle longer than `idle_s` are forgotten."""

    def __init__(self, idle_s: float = 3600.0):
        self._sessions: dict[str, _Session] = {}
        self._lock = threading.Lock()
        self._serial = itertools.count(1)
        self.idle_s = idle_s

    def _get(self, session: str) -> _Session:
        now = time.monotonic()
        if len(self._sessions) > 1000:
            self._sessions = {k: s for k, s in self._sessions.items()
                              if now - s.touched < self.idle_s}
        state = self._sessions.setdefault(session, _Session())
        state.touched = now
        return state

    def announce(self, session: str, job_id, kind: str) -> str:
        """A job was asked for (the click): it becomes the session's newest, replacing the
        older unless it is an edit and a generation is running or waiting (JobRefused). Returns
        the job's id (a fresh one when the page sent none)."""
        job_id = self._job_id(job_id)
        with self._lock:
            state = self._get(session)
            live = {j: k for j, k in state.kinds.items() if j not in state.stopped
                    and j in (state.latest, state.running)}
            if kind == EDIT and GENERATE in live.values():
                raise JobRefused("the scene is still being generated: wait for the run to "
                                 "finish (or press Stop) before steering it")
            # older jobs are replaced: only the running one is still waited for
            state.kinds = {j: k for j, k in state.kinds.items() if j == state.running}
            if state.running and state.running != job_id:
                state.replacing.add(job_id)
            state.latest = job_id
            state.kinds[job_id] = kind
        return job_id

    def _job_id(self, job_id) -> str:
        if isinstance(job_id, str) and 0 < len(job_id) <= MAX_ID:
            return job_id
        return f"server-{next(self._serial)}"

    def begin(self, session: str, job_id, kind: str) -> Job:
        """The job starts running (announced first when the page did not)."""
        with self._lock:
            known = isinstance(job_id, str) and job_id in self._get(session).kinds
        if not known:
            job_id = self.announce(session, job_id, kind)
        with self._lock:
            self._get(session).running = job_id
        return Job(self, session, job_id)

    def is_current(self, session: str, job_id: str) -> bool:
        with self._lock:
            state = self._get(session)
            return state.latest == job_id and job_id not in state.stopped

    def was_stopped(self, session: str, job_id: str) -> bool:
        with self._lock:
            return job_id in self._get(session).stopped

    def was_replacing(self, session: str, job_id: str) -> bool:
        with self._lock:
            return job_id in self._get(session).replacing

    def end(self, session: str, job_id: str) -> None:
        with self._lock:
            state = self._get(session)
            state.kinds.pop(job_id, None)
            state.stopped.discard(job_id)
            state.replacing.discard(job_id)
            if state.running == job_id:
                state.running = ""

    def stop(self, session: str) -> bool:
        """Stop every job of the session, running or waiting; whether there was one."""
        with self._lock:
            state = self._get(session)
            state.stopped.update(state.kinds)
            return bool(state.kinds)

    def forget(self, session: str) -> None:
        """A closed page: its jobs stop and its record goes."""
        with self._lock:
            state = self._sessions.pop(session, None)
        if state is not None:
            state.stopped.update(state.kinds)
