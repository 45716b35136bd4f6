"""What each action reads from the page, by name: a form is a dataclass whose fields are named
after the page's components; `inputs(Form, page)` lists those components in field order (the
order of the endpoint's API arguments), and `@takes(Form)` hands the handler one filled form.

    >>> @takes(ViewForm)
    ... def on_scrub(form, request=None): ...
    >>> step.input(on_scrub, inputs(ViewForm, page), ...)

States (`run`, `model`, ...) are hidden from API clients; `job_id`, last, is sent by the page
(a fresh id per click) and may be left out by API clients.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import MISSING, dataclass, fields

import gradio as gr

from ...models import EMBEDDED


def inputs(form_cls, page) -> list:
    """The page's components for the form's fields, in field order."""
    return [getattr(page, f.name) for f in fields(form_cls)]


def _signature(form_cls, extra: dict) -> inspect.Signature:
    """The form's fields as the handler's parameters (gradio names API arguments by them), then
    the gradio-injected ones (`request`, `evt`) by annotation."""
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    params = [inspect.Parameter(f.name, kind, default=(inspect.Parameter.empty
                                                      if f.default is MISSING else f.default))
              for f in fields(form_cls)]
    params += [inspect.Parameter(name, kind, default=None, annotation=annotation)
               for name, annotation in extra.items()]
    return inspect.Signature(params)


def called_as_form(fn, form_cls, extra: dict):
    """Give `fn(*args)` the form's fields and `extra` as its parameters for gradio: their names
    (the API's argument names) and the annotations gradio injects the request and event by."""
    fn.__signature__ = _signature(form_cls, extra)
    fn.__annotations__ = dict(extra)
    return fn


def bind(form_cls, extra: dict, args, kwargs):
    """What gradio passed, by name: the filled form, and the injected arguments (`extra`'s
    names) that came with it."""
    names = [f.name for f in fields(form_cls)]
    values = dict(zip(names, args))
    values.update({k: v for k, v in kwargs.items() if k in names})
    injected = dict(zip(extra, args[len(names):]))
    injected.update({k: v for k, v in kwargs.items() if k in extra})
    return form_cls(**values), injected


def takes(form_cls, **extra):
    """Decorate handler(form, **extra) so that gradio calls it with the form's fields as
    arguments (`extra`: gradio-injected arguments by annotation, e.g. request=gr.Request)."""
    extra = {"request": gr.Request, **extra}

    def decorate(handler):
        accepted = set(inspect.signature(handler).parameters)

        def prepared(args, kwargs):
            form, injected = bind(form_cls, extra, args, kwargs)
            return form, {k: v for k, v in injected.items() if k in accepted}

        if inspect.isgeneratorfunction(handler):
            @functools.wraps(handler)
            def call(*args, **kwargs):
                form, injected = prepared(args, kwargs)
                yield from handler(form, **injected)
        else:
            @functools.wraps(handler)
            def call(*args, **kwargs):
                form, injected = prepared(args, kwargs)
                return handler(form, **injected)
        return called_as_form(call, form_cls, extra)
    return decorate


@dataclass
class GenerateForm:
    prompt: object
    seed: object
    steps: object
    guidance: object
    layer: object
    opacity: object
    first_value: object
    last_value: object
    negative_prompt: object = ""
    scheduler: object = "default"
    word_attention: object = True
    model: object = EMBEDDED
    job_id: object = ""


@dataclass
class ViewForm:
    """The shown step: scrubbing, playback, a layer change."""
    run: object
    step_value: object
    layer: object
    opacity: object
    model: object = EMBEDDED


@dataclass
class EditForm:
    run: object
    move_x: object
    move_y: object
    scale: object
    depth_push: object
    strength: object
    first_value: object
    last_value: object
    method: object
    drawn: object = "none"
    painted: object = None
    shift_x: object = 0
    shift_y: object = 0
    model: object = EMBEDDED
    job_id: object = ""


@dataclass
class WordForm:
    run: object
    word: object
    when: object
    step_value: object
    layer: object
    model: object = EMBEDDED


@dataclass
class CompareForm:
    pair: object
    run: object
    compare_step: object
    layer_a: object
    layer_b: object
    model: object = EMBEDDED


@dataclass
class ProbeImageForm:
    upload: object
    render_seed: object
    probe_prompt: object
    layer: object
    model: object = EMBEDDED
    job_id: object = ""


def reads(form_cls, fields_of):
    """A reader of gradio's arguments for `GpuDuration`: binds them to the form and returns
    `fields_of(form)`, (model name, steps, guidance)."""
    def read(args, kwargs):
        form, _ = bind(form_cls, {"request": gr.Request}, args, kwargs)
        return fields_of(form)

    return read


# what the GPU time of each model action depends on
READ_GENERATE = reads(GenerateForm, lambda f: (f.model, f.steps, f.guidance))
READ_EDIT = reads(EditForm, lambda f: (f.model, f.run.num_inference_steps,
                                       f.run.guidance_scale))
READ_PROBE = reads(ProbeImageForm, lambda f: (f.model, 1, 1.0))
