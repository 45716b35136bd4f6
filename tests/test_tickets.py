"""Model jobs per session: a newer job replaces the older, Stop ends it, an edit waits for the
generation; and the forms that hand actions their inputs by name."""

import inspect

import pytest

from probe_core.serve.tickets import EDIT, GENERATE, PROBE, JobRefused, JobTickets


def test_a_newer_job_replaces_the_older_and_stop_ends_it():
    tickets = JobTickets()
    first = tickets.begin("a", tickets.announce("a", "job-1", GENERATE), GENERATE)
    assert first.current()
    other = tickets.begin("b", "job-1", GENERATE)  # another session, the same id: its own
    second_id = tickets.announce("a", "job-2", GENERATE)
    assert not first.current() and not first.stopped()  # replaced, not stopped
    first.end()
    second = tickets.begin("a", second_id, GENERATE)
    assert second.current() and other.current() and second.replaced_another()
    assert not other.replaced_another()
    assert tickets.stop("a") is True
    assert not second.current() and second.stopped() and other.current()
    second.end()
    assert tickets.stop("a") is False  # nothing left to stop


def test_an_edit_asked_during_a_generation_is_refused_when_its_turn_comes():
    tickets = JobTickets()
    run = tickets.begin("a", "", GENERATE)  # an API client: announced when it begins
    edit_id = tickets.announce("a", "edit-1", EDIT)
    assert run.current()  # an edit never replaces the generation
    run.end()
    with pytest.raises(JobRefused, match="still being generated"):
        tickets.begin("a", edit_id, EDIT)
    edit = tickets.begin("a", tickets.announce("a", "edit-2", EDIT), EDIT)
    assert edit.current()
    tickets.announce("a", "edit-3", EDIT)
    assert not edit.current()  # a newer edit replaces it
    edit.end()
    assert tickets.announce("a", "x" * 65, EDIT).startswith("server-")  # an overlong id


def test_jobs_replaced_or_stopped_while_waiting_never_run():
    tickets = JobTickets()
    first = tickets.begin("a", tickets.announce("a", "g1", GENERATE), GENERATE)
    for k in (2, 3, 4):  # three more clicks while it runs
        tickets.announce("a", f"g{k}", GENERATE)
    probe = tickets.announce("a", "p1", PROBE)  # another kind waits its turn, replaces nothing
    assert not first.current()
    first.end()
    for k in (2, 3):  # replaced before they started: they do not come back
        job = tickets.begin("a", f"g{k}", GENERATE)
        assert not job.current() and not job.stopped()
        job.end()
    last = tickets.begin("a", "g4", GENERATE)
    assert last.current() and last.replaced_another()
    last.end()
    tickets.stop("a")  # Stop before the probe started: it ends before its first step
    waiting = tickets.begin("a", probe, PROBE)
    assert not waiting.current() and waiting.stopped()
    waiting.end()
    assert tickets.stop("a") is False


def test_forms_name_the_api_arguments_and_fill_the_form():
    from probe_core.serve.ui.forms import GenerateForm, ViewForm, inputs, takes

    @takes(ViewForm)
    def scrub(form):
        return form

    import typing

    import gradio as gr

    names = list(inspect.signature(scrub).parameters)
    assert names == ["run", "step_value", "layer", "opacity", "model", "request"]
    # gradio injects the request (the visitor's session) by the annotation it reads
    assert typing.get_type_hints(scrub)["request"] is gr.Request
    form = scrub("R", 3, "best", 0.5, "m", None)
    assert (form.run, form.step_value, form.layer, form.opacity, form.model) == (
        "R", 3, "best", 0.5, "m")

    class Page:
        pass

    page = Page()
    for name in inspect.signature(GenerateForm).parameters:
        setattr(page, name, f"<{name}>")
    assert inputs(GenerateForm, page)[:3] == ["<prompt>", "<seed>", "<steps>"]
    assert inputs(GenerateForm, page)[-1] == "<job_id>"
