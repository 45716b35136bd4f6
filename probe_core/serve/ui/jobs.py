"""What every handler shares: bad input as a message in its tab's status line, and model jobs
that take turns per session (`tickets.JobTickets`)."""

from __future__ import annotations

import functools
import inspect
from contextlib import contextmanager
from dataclasses import fields

import gradio as gr

from ...models import ModelUnavailableError
from ..tickets import REFUSAL, JobTickets
from .forms import bind, called_as_form


def session_of(request) -> str | None:
    return request.session_hash if request is not None else None


def refusal(err) -> str:
    return f"**Not done:** {err}"


def shown(message):
    """Decorate a handler whose expected failures (bad input, a model that cannot load) become
    a message in the `message` component; every other output keeps its last good value."""
    def decorate(fn):
        if inspect.isgeneratorfunction(fn):
            @functools.wraps(fn)
            def stream(*args, **kwargs):
                try:
                    yield from fn(*args, **kwargs)
                except (ValueError, ModelUnavailableError) as err:
                    yield {message: refusal(err)}
            return stream

        @functools.wraps(fn)
        def call(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except (ValueError, ModelUnavailableError) as err:
                return {message: refusal(err)}
        return call
    return decorate


@contextmanager
def model_job(tickets: JobTickets, request, job_id, kind: str):
    """The job's place in its session (`tickets.Job`), ended however the job ends."""
    job = tickets.begin(session_of(request), job_id, kind)
    try:
        yield job
    finally:
        job.end()


def announcer(tickets: JobTickets, form_cls, kind: str):
    """A validator (run at the click, before the job is queued) that makes the job its
    session's newest of its kind: the older one ends at its next step. An edit asked while the
    session's generation runs is refused: at once for an API caller that sent no job id, else
    in its tab's status line when its turn comes (a refusal here would be drawn on no visible
    input)."""
    n = len(fields(form_cls))
    extra = {"request": gr.Request}

    def validate(*args, **kwargs):
        form, injected = bind(form_cls, extra, args, kwargs)
        session = session_of(injected.get("request"))
        valid = [gr.validate(True, "")] * n
        if session is None:  # no session to keep jobs apart in: the job announces itself
            return valid
        job_id = tickets.announce(session, form.job_id, kind)
        if not form.job_id and tickets.take_refusal(session, job_id):
            return [gr.validate(False, REFUSAL)] + valid[1:]
        return valid

    return called_as_form(validate, form_cls, extra)
