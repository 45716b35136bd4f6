"""Imported first by the app: the Hugging Face hub is offline unless HF_HUB_OFFLINE says
otherwise, so a model id that is not in the local cache fails fast instead of downloading.
The hub client reads the variable when it is first imported, hence before gradio."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
