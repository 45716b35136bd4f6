"""The app's features through gradio_client, one test each: sampling controls, word maps,
drawn edits, the compare view."""

from tests.helpers import APP_PROMPT as PROMPT, open_image


def _generate(client, **kw):
    args = dict(prompt=PROMPT, seed=3, steps=3, guidance=4.0, layer="best", opacity=0.6,
                first_value=1, last_value=3, negative_prompt="", scheduler="default")
    args.update(kw)
    return client.predict(**args, api_name="/generate")


def test_negative_prompt_and_scheduler(client):
    plain = _generate(client)
    assert "done" in plain[-1]
    other = _generate(client, negative_prompt="a blue box", scheduler="DPM-Solver multistep")
    assert "done" in other[-1] and "nearest probed timestep" in other[-1]
    assert (open_image(other[1]).tobytes() != open_image(plain[1]).tobytes())
    for bad, why in ((dict(scheduler="PNDM"), "unknown scheduler"),
                     (dict(negative_prompt="a purple dragon"), "unknown words"),
                     (dict(negative_prompt="x" * 5000), "negative prompt is 5000")):
        assert why in _generate(client, **bad)[-1]
    assert "done" in _generate(client, scheduler="Euler")[-1]  # still usable


def _edit(client, **kw):
    args = dict(move_x=0, move_y=0, scale=1.0, depth_push=0.0, strength=0.3, first_value=1,
                last_value=2, method="guided", drawn="none", painted=None, shift_x=0,
                shift_y=0)
    args.update(kw)
    return client.predict(**args, api_name="/intervene")


def test_drawn_edits_combine_with_the_sliders(client, tmp_path):
    import numpy as np
    from gradio_client import handle_file
    from PIL import Image

    _generate(client)
    layer = np.zeros((256, 256, 4), np.uint8)
    layer[140:220, 20:100] = (255, 0, 255, 255)  # a brush square, bottom left
    Image.fromarray(layer).save(tmp_path / "layer.png")
    canvas = {"background": None, "layers": [handle_file(str(tmp_path / "layer.png"))],
              "composite": None}
    *_, score, status = _edit(client, drawn="paint", painted=canvas, depth_push=1.0)
    assert "Edit done" in status
    assert "Object mask: painted mask" in score and "Depth map: depth nearer by 1" in score
    assert "Dice with the painted mask rose" in score
    *_, score, status = _edit(client, drawn="flip", move_y=2)
    assert "flip object left-right, move object by (0, 2) px" in score
    *_, score, status = _edit(client, drawn="swap", shift_x=3)
    assert "swap near and far, shift depth by (3, 0) px" in score
    assert "paint the target mask" in _edit(client, drawn="paint")[-1]  # nothing painted
    assert "Edit done" in _edit(client, move_x=4)[-1]  # still usable


def test_word_maps_and_the_compare_view(client):
    out = _generate(client, word_attention=True)
    words = out[9]
    choices = [c[0] if isinstance(c, (list, tuple)) else c for c in words["choices"]]
    assert choices == ["a", "red", "sphere", "on", "gray", "plain", "floor"]
    image, compare, text, status = client.predict(word="sphere", when="all", step_value=3,
                                                  layer="best", api_name="/word_map")
    assert open_image(image).size[0] == 256 and open_image(compare).size[0] > 3 * 256
    assert "'sphere'** attention, mean of 3 steps" in text and "Pearson r" in text
    *_, text, status = client.predict(word="floor", when="step", step_value=1, layer="best",
                                      api_name="/word_map")
    assert "attention, step 1" in text
    for bad, why in ((dict(word="dragon"), "no word 'dragon'"),
                     (dict(word="sphere", step_value=99), "step must be between")):
        args = dict(word="sphere", when="step", step_value=1, layer="best")
        args.update(bad)
        assert why in client.predict(**args, api_name="/word_map")[-1]
    _generate(client, word_attention=False)
    assert "kept no word attention" in client.predict(
        word="sphere", when="all", step_value=1, layer="best", api_name="/word_map")[-1]


def test_compare_two_seeds_and_a_run_with_its_edit(client):
    assert "keep a run as A first" in client.predict(3, "best", "best", api_name="/compare")[-1]
    assert "generate an image first" in client.predict(3, "best", "best",
                                                       api_name="/keep_as_a")[-1]
    _generate(client, seed=3)
    *_, image, text, status = client.predict(3, "best", "best", api_name="/keep_as_a")
    assert "seed 3" in text and text.count("seed 3") == 2  # B is the current run: A itself
    assert "Mean |B - A| depth 0.00" in text
    _generate(client, seed=4)
    image, text, status = client.predict(2, "best", "best", api_name="/compare")
    assert "A: *" in text and "(seed 3), step 2 of 3" in text and "(seed 4)" in text
    assert open_image(image).size[0] > 2 * 128
    assert "no edit yet" in client.predict(3, "best", "best", api_name="/compare_edit")[-1]
    _edit(client, move_x=6)
    *_, image, text, status = client.predict(3, "best", "best", api_name="/compare_edit")
    assert "A after its edit" in text and "Mean |B - A| depth 0.00" not in text
    assert "step must be between" in client.predict(9, "best", "best", api_name="/compare")[-1]


def test_probe_an_upload_and_a_held_out_render(client, tmp_path):
    import numpy as np
    from gradio_client import handle_file
    from PIL import Image

    from probe_core.world.scenes import render_scene, sample_scene

    tiles, table, status = client.predict(None, 7100003, "", "best", api_name="/probe_image")
    assert "Probed the image at every step" in status and "vs truth" in table
    path = tmp_path / "upload.png"
    Image.fromarray(render_scene(sample_scene(7100011), 32).image).save(path)
    tiles, table, status = client.predict(handle_file(str(path)), None, "", "best",
                                          api_name="/probe_image")
    assert "Probed the image" in status and "vs labeler" in table and "vs truth" not in table
    assert [t["caption"] for t in tiles] == ["step 1", "step 2", "step 3"]  # the probe set's steps
    noise = (np.random.default_rng(0).random((40, 40, 3)) * 255).astype(np.uint8)
    Image.fromarray(noise).save(path)  # any picture: resized to the model's size
    assert "Probed the image" in client.predict(handle_file(str(path)), None, "a red box",
                                                "best", api_name="/probe_image")[-1]
