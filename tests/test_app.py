"""The launched app through gradio_client: generate, scrub, intervene, export, bad input."""

import json
from pathlib import Path

from tests.helpers import open_image


def test_endpoints_generate_scrub_intervene_export(client):
    names = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    assert {"/generate", "/scrub", "/intervene", "/export"} <= names
    out = client.predict("a red sphere on a gray plain floor", 3, 3, 4.0, "best", 0.6, 1, 4,
                         api_name="/generate")
    x0, depth, sal, step, film, emergence, first, last, *_, status = out
    assert open_image(x0).size == (256, 256) and open_image(depth).size == (256, 256)
    assert "step 3 of 3" in status and "done" in status
    x0, depth, sal, readout, caption = client.predict(1, "best", 0.3, api_name="/scrub")
    assert "step 1 of 3" in caption
    *_, score, status = client.predict(8, 0, 1.0, 0.0, 0.3, 2, 2, "guided",
                                       api_name="/intervene")
    assert "Dice with target" in score
    files, status = client.predict("best", api_name="/export")
    record = [f for f in files if str(f).endswith("run.json")]
    assert json.loads(Path(record[0]).read_text())["seed"] == 3


def test_bad_input_gives_a_message_and_the_app_keeps_working(client):
    status = client.predict("a purple dragon", 3, 3, 4.0, "best", 0.6, 1, 4,
                            api_name="/generate")[-1]
    assert "unknown words" in status
    status = client.predict("a red box", -5, 3, 4.0, "best", 0.6, 1, 4, api_name="/generate")[-1]
    assert "seed must be between" in status
    status = client.predict(8, 0, 1.0, 0.0, 0.3, 1, 2, "guided", api_name="/intervene")[-1]
    assert "generate an image first" in status
    status = client.predict("a red box", 1, 2, 4.0, "up_blocks.9.nope", 0.6, 1, 4,
                            api_name="/generate")[-1]
    assert "no self-attention layer" in status
    status = client.predict("", 1, 2, 4.0, "best", 0.6, 1, 4, api_name="/generate")[-1]
    assert "type a prompt first" in status
    out = client.predict("a red box", 1, 2, 4.0, "best", 0.6, 1, 4, api_name="/generate")
    assert "done" in out[-1]


def test_two_sessions_keep_their_own_runs(client):
    from concurrent.futures import ThreadPoolExecutor

    from gradio_client import Client

    other = Client(client.src, verbose=False)
    jobs = [(client, "a red sphere on a gray plain floor", 3), (other, "a blue box", 1)]
    with ThreadPoolExecutor(2) as pool:
        outs = list(pool.map(lambda j: j[0].predict(j[1], 7, j[2], 4.0, "best", 0.6, 1, 4,
                                                    api_name="/generate"), jobs))
    assert "of 3" in outs[0][-1] and "of 1" in outs[1][-1]
    # each session scrubs its own cached run
    assert "step 2 of 3" in client.predict(2, "best", 0.6, api_name="/scrub")[-1]
    assert "step 1 of 1" in other.predict(1, "best", 0.6, api_name="/scrub")[-1]


def test_a_model_that_cannot_load_leaves_the_session_on_its_model(client):
    out = client.predict("nobody/no-such-model", api_name="/load_model")
    message = next(str(o) for o in out if "Could not load" in str(o))
    assert "hf download" in message and "Still on **tiny test model**" in message
    out = client.predict("a red box", 1, 2, 4.0, "best", 0.6, 1, 4, api_name="/generate")
    assert "step 2 of 2" in out[-1]


def test_a_session_switches_to_an_sd_shaped_folder(client, tmp_path):
    from tests.helpers import save_tiny_sd_pipeline

    folder = save_tiny_sd_pipeline(tmp_path / "tiny-sd")
    out = client.predict(folder, api_name="/load_model")
    assert any(f"Model: **{folder}**" in str(o) for o in out)
    values = [o["value"] if isinstance(o, dict) else o for o in out[-5:-1]]
    assert values == ["activation", 0.05, 1, 3]  # the paper's edit with its own defaults
    sd_only_layer = "up_blocks.3.attentions.2.transformer_blocks.0.attn1"  # not in the tiny model
    out = client.predict("a red box", 1, 2, 7.5, sd_only_layer, 0.6, 1, 4, api_name="/generate")
    assert "step 2 of 2" in out[-1] and "up3.2" in out[-1]
    other = type(client)(client.src, verbose=False)  # a new session starts on the embedded model
    status = other.predict("a red box", 1, 2, 4.0, sd_only_layer, 0.6, 1, 4,
                           api_name="/generate")[-1]
    assert "no self-attention layer" in status
