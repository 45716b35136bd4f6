"""Input components whose value reaches the handler as the client sent it.

Gradio converts and range-checks a Slider's or Number's value, and checks a Dropdown's or
Radio's against its choices, before the handler runs, with a generic message. These subclasses
hand the raw value on, so that the library's own checks answer a wrong value with a message
naming the argument (`probe_core.serve.inputs`). In the browser they render as the component
they extend. Gradio writes a type stub (.pyi) for each component class beside this module, as it
does for every custom component; it is ignored by git.
"""

import gradio as gr


class _AsSent:
    """Mixed in before a gradio component: its value unconverted, and drawn as that component
    in the browser."""

    def preprocess(self, payload):
        return payload

    def get_block_name(self):
        return type(self).__mro__[2].__name__.lower()  # the gradio class after this mixin


class Slider(_AsSent, gr.Slider):
    pass


class Number(_AsSent, gr.Number):
    pass


class Textbox(_AsSent, gr.Textbox):
    pass


class Dropdown(_AsSent, gr.Dropdown):
    pass


class Radio(_AsSent, gr.Radio):
    pass
