"""Input components whose value reaches the handler as the client sent it.

Gradio converts and range-checks a Slider's or Number's value, and checks a Dropdown's or
Radio's against its choices, before the handler runs, with a generic message. These subclasses
hand the raw value on, so that the library's own checks answer a wrong value with a message
naming the argument (`probe_core.serve.inputs`). In the browser they render as the component
they extend. Gradio writes a type stub (.pyi) for each component class beside this module, as it
does for every custom component; it is ignored by git.
"""

import gradio as gr


class Slider(gr.Slider):
    def preprocess(self, payload):
        return payload

    def get_block_name(self):
        return "slider"


class Number(gr.Number):
    def preprocess(self, payload):
        return payload

    def get_block_name(self):
        return "number"


class Textbox(gr.Textbox):
    def preprocess(self, payload):
        return payload

    def get_block_name(self):
        return "textbox"


class Dropdown(gr.Dropdown):
    def preprocess(self, payload):
        return payload

    def get_block_name(self):
        return "dropdown"


class Radio(gr.Radio):
    def preprocess(self, payload):
        return payload

    def get_block_name(self):
        return "radio"
