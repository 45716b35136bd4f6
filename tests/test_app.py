"""The launched app through gradio_client: the `generate` endpoint and a bad input."""

import pytest
from PIL import Image

from probe_core.demo import ProbeDemo


@pytest.fixture
def client(tiny_pipe):
    from gradio_client import Client

    from app import build_app

    app = build_app(ProbeDemo(tiny_pipe, "tiny test model"))
    app.queue()
    _, url, _ = app.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
    try:
        yield Client(url, verbose=False)
    finally:
        app.close()


def test_generate_endpoint_and_bad_input(client):
    path = client.predict("a red sphere on a gray plain floor", 3, 2, 4.0, api_name="/generate")
    assert Image.open(path).size == (256, 256)
    with pytest.raises(Exception, match="unknown words"):
        client.predict("a purple dragon", 3, 2, 4.0, api_name="/generate")
    # the app is still usable after the error
    path = client.predict("", 1, 1, 4.0, api_name="/generate")
    assert Image.open(path).size == (256, 256)
