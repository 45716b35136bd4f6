import numpy as np
import pytest
import torch

from probe_core.probing.fitting import fit_logistic, fit_ridge
from probe_core.probing.probes import ProbeMismatchError, ProbeSet, ProbeSettings
from probe_core.probing.readout import apply_probe, patch_means, to_map

LAYERS = ["down_blocks.0.attentions.0.transformer_blocks.0.attn1",
          "mid_block.attentions.0.transformer_blocks.0.attn1"]


def _settings(**kw):
    base = dict(model="tiny-scenes", scheduler="DDIMScheduler", num_inference_steps=15,
                image_size=64, guidance_scale=4.0, layers=LAYERS)
    base.update(kw)
    return ProbeSettings(**base)


def test_ridge_recovers_a_known_linear_map():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(3000, 24, generator=g) * 5
    w_true = torch.randn(1, 24, generator=g)
    y = X @ w_true.T + 0.01 * torch.randn(3000, 1, generator=g)
    w = fit_ridge(X, y, lam=1e-6)
    assert w.shape == (1, 24)
    assert torch.allclose(w, w_true, atol=1e-2)


def test_logistic_recovers_a_known_direction():
    g = torch.Generator().manual_seed(1)
    X = torch.randn(5000, 12, generator=g)
    w_true = torch.randn(12, generator=g)
    p = torch.sigmoid(X @ w_true)  # soft labels from a known linear logit
    w = fit_logistic(X, p, lam=0.0, steps=200)
    assert w.shape == (2, 12)
    f = w[1] - w[0]  # foreground minus background logit direction
    assert torch.allclose(f, w_true, atol=0.05)
    probs = apply_probe(w, X).softmax(-1)[:, 1]
    assert torch.allclose(probs, p, atol=0.02)


def test_patch_means_and_nearest_map_agree():
    label = np.arange(16.0).reshape(4, 4)
    means = patch_means(label, (2, 2))
    assert means.tolist() == [2.5, 4.5, 10.5, 12.5]
    m = to_map(torch.tensor(means), latent_hw=(2, 2), out_size=4)
    assert m[0, 0] == m[1, 1] == 2.5 and m[3, 3] == 12.5


def test_save_load_round_trip(tmp_path):
    ps = ProbeSet(_settings(), extra={"note": "test"})
    ps.add("depth", 0, LAYERS[0], torch.randn(1, 32))
    ps.add("saliency", 14, LAYERS[1], torch.randn(2, 64))
    ps.save(tmp_path / "p")
    again = ProbeSet.load(tmp_path / "p", expect=_settings())
    assert again.keys() == ps.keys()
    for k in ps.keys():
        assert torch.equal(again.get(*k), ps.get(*k))
    assert again.extra == {"note": "test"}
    acts = torch.randn(16 * 16, 32)
    d = again.depth_map(0, LAYERS[0], acts, latent_hw=(16, 16), out_size=64)
    assert d.shape == (64, 64)
    s = again.saliency_map(14, LAYERS[1], torch.randn(4, 64), latent_hw=(16, 16), out_size=64)
    assert s.shape == (64, 64) and 0 <= s.min() and s.max() <= 1


@pytest.mark.parametrize("change, message", [
    (dict(num_inference_steps=25), "num_inference_steps: probes have 15, run uses 25"),
    (dict(model="CompVis/stable-diffusion-v1-4"), "model"),
    (dict(scheduler="LMSDiscreteScheduler"), "scheduler"),
    (dict(guidance_scale=7.5), "guidance_scale"),
])
def test_load_refuses_other_settings(tmp_path, change, message):
    ps = ProbeSet(_settings())
    ps.add("depth", 0, LAYERS[0], torch.randn(1, 32))
    ps.save(tmp_path / "p")
    with pytest.raises(ProbeMismatchError, match=message):
        ProbeSet.load(tmp_path / "p", expect=_settings(**change))


def test_load_refuses_unknown_layers_and_missing_files(tmp_path):
    ps = ProbeSet(_settings())
    ps.add("depth", 0, "up_blocks.9.attentions.0.transformer_blocks.0.attn1", torch.randn(1, 8))
    ps.save(tmp_path / "p")
    with pytest.raises(ProbeMismatchError, match="up_blocks.9"):
        ProbeSet.load(tmp_path / "p", expect=_settings())
    with pytest.raises(FileNotFoundError, match="probes.json"):
        ProbeSet.load(tmp_path / "missing")
    (tmp_path / "p" / "probes.json").write_text("{not json")
    with pytest.raises(ProbeMismatchError, match="not a probe set"):
        ProbeSet.load(tmp_path / "p")


def test_add_checks_task_and_shape():
    ps = ProbeSet(_settings())
    with pytest.raises(ValueError, match="unknown task"):
        ps.add("normals", 0, LAYERS[0], torch.randn(3, 8))
    with pytest.raises(ValueError, match=r"\(2, C\)"):
        ps.add("saliency", 0, LAYERS[0], torch.randn(1, 8))
    with pytest.raises(KeyError, match="no depth probe"):
        ps.get("depth", 3, LAYERS[0])


def test_read_gives_both_maps_for_layers_with_probes():
    ps = ProbeSet(_settings())
    ps.add("depth", 2, LAYERS[0], torch.randn(1, 32))
    ps.add("saliency", 2, LAYERS[0], torch.randn(2, 32))
    acts = {LAYERS[0]: torch.randn(256, 32), LAYERS[1]: torch.randn(16, 64)}
    maps = ps.read(2, acts, latent_hw=(16, 16), out_size=64)
    assert list(maps) == [LAYERS[0]]  # no probes for LAYERS[1]
    depth, sal = maps[LAYERS[0]]
    assert depth.shape == sal.shape == (64, 64)
    assert ps.read(3, acts, (16, 16), 64) == {}


def test_fingerprint_refuses_probes_of_a_retrained_model(tmp_path, tiny_pipe):
    from probe_core.probing.probes import unet_fingerprint

    fp = unet_fingerprint(tiny_pipe.unet)
    assert fp == unet_fingerprint(tiny_pipe.unet)
    ps = ProbeSet(_settings(model_fingerprint=fp))
    ps.add("depth", 0, LAYERS[0], torch.randn(1, 32))
    ps.save(tmp_path / "p")
    ProbeSet.load(tmp_path / "p", expect=_settings(model_fingerprint=fp))
    ProbeSet.load(tmp_path / "p", expect=_settings())  # not recorded: not compared
    with torch.no_grad():
        next(tiny_pipe.unet.parameters()).add_(1.0)
    with pytest.raises(ProbeMismatchError, match="retrained"):
        ProbeSet.load(tmp_path / "p", expect=_settings(model_fingerprint=unet_fingerprint(
            tiny_pipe.unet)))


@pytest.mark.parametrize("readout", ["nearest", "bilinear"])
def test_read_equals_the_single_map_functions(readout):
    ps = ProbeSet(_settings(readout=readout))
    ps.add("depth", 0, LAYERS[0], torch.randn(1, 32))
    ps.add("saliency", 0, LAYERS[0], torch.randn(2, 32))
    acts = torch.randn(256, 32)
    depth, sal = ps.read(0, {LAYERS[0]: acts}, (16, 16), 64)[LAYERS[0]]
    np.testing.assert_allclose(depth, ps.depth_map(0, LAYERS[0], acts, (16, 16), 64), atol=1e-5)
    np.testing.assert_allclose(sal, ps.saliency_map(0, LAYERS[0], acts, (16, 16), 64), atol=1e-5)
    # re-fitting a probe replaces what read() uses
    ps.add("depth", 0, LAYERS[0], torch.zeros(1, 32))
    assert np.all(ps.read(0, {LAYERS[0]: acts}, (16, 16), 64)[LAYERS[0]][0] == 0)


def test_a_probe_set_for_another_site_is_refused(tmp_path):
    ps = ProbeSet(_settings())
    ps.add("depth", 0, LAYERS[0], torch.randn(1, 32))
    ps.save(tmp_path)
    other = _settings()
    other.site = "block"
    with pytest.raises(ProbeMismatchError, match="site: probes have 'attn1', run uses 'block'"):
        ProbeSet.load(tmp_path, expect=other)


def test_bilinear_readout_interpolates_between_token_centres():
    values = torch.tensor([0.0, 4.0, 8.0, 12.0])  # a 2x2 grid
    near = to_map(values, latent_hw=(2, 2), out_size=4)
    bil = to_map(values, latent_hw=(2, 2), out_size=4, readout="bilinear")
    assert near[0].tolist() == [0, 0, 4, 4]
    assert bil[0].tolist() == [0, 1, 3, 4]  # weights 3/4, 1/4 between centres, clamped edges
    assert bil[:, 0].tolist() == [0, 2, 6, 8]
    with pytest.raises(ValueError, match="unknown readout"):
        to_map(values, (2, 2), 4, readout="cubic")


def test_saliency_map_upsamples_logits_not_probabilities():
    ps = ProbeSet(_settings(readout="bilinear"))
    w = torch.tensor([[0.0], [1.0]])  # foreground logit = the single channel
    ps.add("saliency", 0, LAYERS[0], w)
    acts = torch.tensor([[-10.0], [10.0], [-10.0], [10.0]])  # 2x2 grid, logits -10 | +10
    sal = ps.saliency_map(0, LAYERS[0], acts, (2, 2), 4)
    # between the columns the logit is -5 / +5: far from the 0.25 / 0.75 of blended probabilities
    assert sal[0, 1] < 0.01 and sal[0, 2] > 0.99


def test_a_saved_set_keeps_its_readout_and_old_sets_read_nearest(tmp_path):
    import json

    ps = ProbeSet(_settings(readout="bilinear"))
    ps.add("depth", 0, LAYERS[0], torch.randn(1, 32))
    ps.save(tmp_path)
    assert ProbeSet.load(tmp_path, expect=_settings()).settings.readout == "bilinear"
    meta = json.loads((tmp_path / "probes.json").read_text())
    del meta["settings"]["readout"]  # a set saved before readouts existed
    (tmp_path / "probes.json").write_text(json.dumps(meta))
    assert ProbeSet.load(tmp_path).settings.readout == "nearest"
    meta["settings"]["readout"] = "cubic"
    (tmp_path / "probes.json").write_text(json.dumps(meta))
    with pytest.raises(ProbeMismatchError, match="readout 'cubic'"):
        ProbeSet.load(tmp_path)


def test_the_fingerprint_does_not_depend_on_dtype_but_on_the_weights(tiny_pipe):
    from probe_core.probing.probes import unet_fingerprint

    full = unet_fingerprint(tiny_pipe.unet)
    assert unet_fingerprint(tiny_pipe.unet.half()) == full  # the same weights in float16
    with torch.no_grad():
        next(tiny_pipe.unet.parameters()).add_(0.1)  # retrained, a little
    assert unet_fingerprint(tiny_pipe.unet) != full


def test_scene_models_run_in_float32_on_a_gpu_unless_asked():
    from probe_core.models import pick_device

    assert pick_device("cuda", None, "tiny-scenes") == ("cuda", torch.float32)
    assert pick_device("cuda", None, "CompVis/stable-diffusion-v1-4") == ("cuda", torch.float16)
    assert pick_device("cuda", torch.float16, "tiny-scenes") == ("cuda", torch.float16)


def _offset_set(readout="bilinear"):
    ps = ProbeSet(_settings(readout=readout, depth_offset="layout"))
    ps.add("depth", 0, LAYERS[0], torch.randn(1, 32))
    ps.add("saliency", 0, LAYERS[0], torch.randn(2, 32))
    ps.set_offset(LAYERS[0], torch.linspace(-1, 1, 16))  # a 4x4 token grid
    return ps


@pytest.mark.parametrize("readout", ["nearest", "bilinear"])
def test_a_layout_offset_is_added_to_every_depth_output(readout):
    ps = _offset_set(readout)
    acts = torch.randn(16, 32)
    plain = ProbeSet(_settings(readout=readout))
    plain.add("depth", 0, LAYERS[0], ps.get("depth", 0, LAYERS[0]))
    offset_map = to_map(ps.offsets[LAYERS[0]], (16, 16), 64, readout)
    d = ps.depth_map(0, LAYERS[0], acts, (16, 16), 64)
    np.testing.assert_allclose(d, plain.depth_map(0, LAYERS[0], acts, (16, 16), 64) + offset_map,
                               atol=1e-5)
    # the token path (streamed runs, the pixel inspector) reads the same numbers
    depth, sal = ps.read(0, {LAYERS[0]: acts}, (16, 16), 64)[LAYERS[0]]
    np.testing.assert_allclose(depth, d, atol=1e-5)
    np.testing.assert_allclose(sal, ps.saliency_map(0, LAYERS[0], acts, (16, 16), 64), atol=1e-5)
    tokens = ps.token_outputs(0, {LAYERS[0]: acts})[LAYERS[0]]
    assert ps.pixel_from_tokens(tokens, (16, 16), 64, 40, 9)[0] == pytest.approx(d[40, 9], abs=1e-5)


def test_offsets_survive_saving_and_a_set_without_them_is_refused(tmp_path):
    import json

    ps = _offset_set()
    ps.save(tmp_path / "p")
    back = ProbeSet.load(tmp_path / "p", expect=_settings())
    assert back.settings.depth_offset == "layout"
    assert torch.equal(back.offsets[LAYERS[0]], ps.offsets[LAYERS[0]])
    assert back.keys() == ps.keys()
    # a set that says it has offsets but lacks one
    bare = ProbeSet(_settings(depth_offset="layout"))
    bare.add("depth", 0, LAYERS[0], torch.randn(1, 32))
    bare.save(tmp_path / "bare")
    with pytest.raises(ProbeMismatchError, match="no depth offset"):
        ProbeSet.load(tmp_path / "bare")
    meta = json.loads((tmp_path / "p" / "probes.json").read_text())
    meta["settings"]["depth_offset"] = "learned"
    (tmp_path / "p" / "probes.json").write_text(json.dumps(meta))
    with pytest.raises(ProbeMismatchError, match="depth offset 'learned'"):
        ProbeSet.load(tmp_path / "p")
    # an offset for another token grid is refused where it is used
    with pytest.raises(ProbeMismatchError, match="16 tokens, the layer has 64"):
        ps.depth_map(0, LAYERS[0], torch.randn(64, 32), (16, 16), 64)


@pytest.mark.parametrize("readout", ["nearest", "bilinear"])
def test_fitting_with_a_layout_offset_fits_what_the_layout_leaves(readout):
    """Labels = a fixed layout + a linear function of the activations, whose first channel also
    carries the layout (as real activations carry position). The offset set takes the layout as
    its offset and fits only what it leaves: no weight on the layout channel, and maps that
    match the labels (counting the layout twice would miss them by the layout)."""
    from probe_core.probing.fitting import FitOptions, fit_probe_set

    g = torch.Generator().manual_seed(0)
    n, grid, c = 2000, 4, 8
    layout = torch.linspace(-2, 2, grid).repeat_interleave(grid)  # rows: far at top, near below
    acts = torch.randn(n, grid * grid, c, generator=g)
    acts[..., 0] = layout
    w_true = torch.randn(1, c, generator=g)
    w_true[0, 0] = 0.0
    tokens = (acts @ w_true.T)[..., 0] + layout  # (n, 16) token values
    depth = tokens.reshape(n, grid, grid).repeat_interleave(4, 1).repeat_interleave(4, 2).numpy()
    sal = depth > 0
    s = _settings(readout=readout, depth_offset="layout", layers=[LAYERS[0]])
    ps = fit_probe_set(s, [(0, LAYERS[0])], lambda step, layer: acts, depth, sal, (grid, grid),
                       FitOptions(lam=1e-8))
    mean_tokens = torch.as_tensor(depth.mean(0)).reshape(grid, 4, grid, 4).mean((1, 3)).reshape(-1)
    torch.testing.assert_close(ps.offsets[LAYERS[0]], mean_tokens)
    torch.testing.assert_close(ps.offsets[LAYERS[0]], layout, atol=0.25, rtol=0)
    w = ps.get("depth", 0, LAYERS[0])
    assert abs(float(w[0, 0])) < 0.15  # the layout channel is left to the offset
    test = torch.randn(grid * grid, c, generator=g)
    test[:, 0] = layout
    truth = to_map((test @ w_true.T)[:, 0] + layout, (grid, grid), 16, readout)
    err = np.abs(ps.depth_map(0, LAYERS[0], test, (grid, grid), 16) - truth).mean()
    # counting the layout twice would miss by its mean size, 1.25; the bilinear fit also pays for
    # smoothing these piecewise-constant labels
    assert err < 0.35


def _massive_activations(n=4000, c=32, seed=0):
    """Tokens whose depth and object live in small channels, beside three "massive" channels
    10^4 times larger and nearly constant (as a DiT's, set by the timestep through AdaLN)."""
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, c, generator=g)
    X[:, :3] = 1e4 * (1 + 0.01 * torch.randn(n, 3, generator=g))
    w = torch.zeros(c)
    w[5:9] = torch.tensor([1.0, -0.5, 0.8, 0.3])
    depth = X[:, 3:] @ w[3:] + 0.1 * torch.randn(n, generator=g)
    fg = (X[:, 10] + 0.3 * torch.randn(n, generator=g) > 0).float()
    return X, depth, fg


@pytest.mark.parametrize("channels", ["rms", "drop-massive"])
def test_massive_channels_swamp_the_raw_fit_and_normalising_recovers_it(channels):
    """With the ridge penalty relative to the mean channel, three massive channels leave the
    informative ones almost unfitted; scaling each channel by its RMS or dropping the massive
    ones recovers the probe, held out, through the same bias-free readout."""
    from probe_core.metrics import pearson
    from probe_core.probing.fitting import fit_key

    X, depth, fg = _massive_activations()
    Xt, depth_t, fg_t = _massive_activations(seed=1)
    scores = {}
    for how in ("raw", channels):
        wd, ws = fit_key(X, depth, fg, 1e-3, how)
        assert wd.shape == (1, 32) and ws.shape == (2, 32)
        pred = apply_probe(wd, Xt)[:, 0]
        logits = apply_probe(ws, Xt)
        accuracy = float(((logits[:, 1] > logits[:, 0]).float() == fg_t).float().mean())
        scores[how] = (pearson(pred.numpy(), depth_t.numpy()), accuracy)
    assert scores["raw"][0] < 0.5 and scores[channels][0] > 0.9, scores
    assert scores[channels][1] > 0.85 and scores[channels][1] > scores["raw"][1] + 0.2, scores
    if channels == "drop-massive":
        wd, _ = fit_key(X, depth, fg, 1e-3, channels)
        assert torch.all(wd[0, :3] == 0)


def test_an_unknown_channel_handling_is_refused():
    from probe_core.probing.fitting import fit_key

    X, depth, fg = _massive_activations(n=50)
    with pytest.raises(ValueError, match="unknown channel handling"):
        fit_key(X, depth, fg, 1e-3, "clip")


def test_a_probe_set_fitted_with_rms_channels_records_it_and_reads_as_fitted(tmp_path):
    from probe_core.probing.fitting import fit_key, fit_probe_set, fit_inputs

    g = torch.Generator().manual_seed(0)
    acts = torch.randn(6, 16, 8, generator=g)  # (N, HW, C) on a 4x4 grid
    acts[..., 0] += 1e4
    depth = torch.randn(6, 8, 8, generator=g).numpy()
    saliency = depth > 0
    settings = ProbeSettings("m", "DDIMScheduler", 1, 8, 4.0, ["l"], channels="rms")
    probes = fit_probe_set(settings, [(0, "l")], lambda s, l: acts, depth, saliency, (4, 4))
    X, depth_t, sal_t = fit_inputs(acts, depth, saliency, (4, 4), settings.readout)
    wd, _ = fit_key(X, depth_t, sal_t, 1e-3, "rms")
    assert torch.allclose(probes.weights[("depth", 0, "l")], wd)
    probes.save(tmp_path)
    assert ProbeSet.load(tmp_path).settings.channels == "rms"
