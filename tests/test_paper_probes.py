import pickle
import zipfile

import pytest
import torch

from probe_core.cli import main
from probe_core.sd.paper_probes import (SD_V1_BLOCKS, PaperProbeError, import_paper_probes,
                                     sd_v1_layers)
from probe_core.probing.probes import ProbeSet
from tests.helpers import SD_V1_LAYERS


def write_paper_files(root, skip=None, final_too=True, bad_shape=None):
    """The authors' layout: 15 steps x 16 layers x 2 tasks, with the same names and shapes."""
    for step in range(15):
        for (kind, block), (n, c) in SD_V1_BLOCKS.items():
            for layer in range(n):
                for task, folder, stem, out in (
                        ("saliency", "large_syn_dataset", "segmentation", 2),
                        ("depth", "large_syn_dataset_continuous", "regression", 1)):
                    d = root / folder / f"at_step_{step}"
                    d.mkdir(parents=True, exist_ok=True)
                    suffix = "_linear_no_bias_unsmoothed" if task == "depth" else ""
                    name = f"{stem}_probe_{kind}_{block}_attn1_out_{layer}"
                    if (task, step, kind, block, layer) == skip:
                        continue
                    shape = bad_shape if (task, step, kind, block, layer) == (
                        "depth", 0, "mid", 0, 0) and bad_shape else (out, c)
                    w = torch.full(shape, float(step))
                    torch.save({"dense1.weight": w}, d / f"{name}{suffix}.pth")
                    if final_too:
                        torch.save({"dense1.weight": -w}, d / f"{name}_final{suffix}.pth")


def test_the_sd_presets_run_what_the_authors_probes_were_made_for(tmp_path):
    """A run with an SD preset's settings is one the imported probe set accepts."""
    from probe_core.models import PRESETS
    from probe_core.probing.probes import ProbeSettings

    write_paper_files(tmp_path / "src", final_too=False)
    made_for = import_paper_probes(tmp_path / "src").settings
    for hub_id in ("CompVis/stable-diffusion-v1-4", "stable-diffusion-v1-5/stable-diffusion-v1-5"):
        p = PRESETS[hub_id]
        run = ProbeSettings(made_for.model, p.scheduler, p.num_inference_steps, p.image_size,
                            p.guidance_scale, site="attn1")
        assert made_for.differences(run) == [] and p.negative_prompt == ""


def test_layer_names_match_sd_v1():
    assert sd_v1_layers() == SD_V1_LAYERS


def test_import_folder_and_zip(tmp_path):
    write_paper_files(tmp_path / "src")
    probes = import_paper_probes(tmp_path / "src")
    assert len(probes.keys("saliency")) == len(probes.keys("depth")) == 15 * 16
    w = probes.get("depth", 7, "up_blocks.2.attentions.1.transformer_blocks.0.attn1")
    assert w.shape == (1, 640) and float(w[0, 0]) == 7.0  # the best-on-held-out file
    assert float(import_paper_probes(tmp_path / "src", final=True).get(
        "depth", 7, SD_V1_LAYERS[0])[0, 0]) == -7.0
    with zipfile.ZipFile(tmp_path / "probes.zip", "w") as z:
        for f in (tmp_path / "src").rglob("*.pth"):
            z.write(f, f.relative_to(tmp_path / "src"))
    assert main(["import-paper-probes", str(tmp_path / "probes.zip"),
                 "--out", str(tmp_path / "out")]) == 0
    loaded = ProbeSet.load(tmp_path / "out")
    assert loaded.settings.scheduler == "LMSDiscreteScheduler" and len(loaded.keys()) == 480


def test_missing_files_and_wrong_shapes_are_refused(tmp_path):
    write_paper_files(tmp_path / "a", skip=("saliency", 3, "up", 1, 2), final_too=False)
    with pytest.raises(PaperProbeError, match="1 of 480 probe files missing"):
        import_paper_probes(tmp_path / "a")
    write_paper_files(tmp_path / "b", bad_shape=(1, 64), final_too=False)
    with pytest.raises(PaperProbeError, match=r"expected dense1.weight of shape \(1, 1280\)"):
        import_paper_probes(tmp_path / "b")


def test_files_with_code_in_them_are_not_loaded(tmp_path):
    write_paper_files(tmp_path / "c", final_too=False)
    evil = next((tmp_path / "c").rglob("segmentation_probe_down_0_attn1_out_0.pth"))

    class Boom:
        def __reduce__(self):
            return (exec, ("raise SystemExit('pickle code ran')",))

    evil.write_bytes(pickle.dumps({"dense1.weight": Boom()}))
    with pytest.raises(PaperProbeError, match="not a plain state dict"):
        import_paper_probes(tmp_path / "c")


@pytest.mark.parametrize("member", ["../escape.pth", "../ab/x.pth", "/abs/x.pth",
                                    "a/../../x.pth"])
def test_a_zip_with_a_path_out_of_its_folder_is_refused(tmp_path, member):
    z_path = tmp_path / "bad.zip"
    with zipfile.ZipFile(z_path, "w") as z:
        z.writestr("ok/at_step_0/x.pth", b"0")
        z.writestr(member, b"0")
    with pytest.raises(PaperProbeError, match="unsafe path"):
        import_paper_probes(z_path)


def test_a_zip_bomb_is_refused_before_anything_is_written(tmp_path, monkeypatch):
    from probe_core.sd import paper_probes

    monkeypatch.setattr(paper_probes, "MAX_ZIP_BYTES", 1000)
    z_path = tmp_path / "bomb.zip"
    with zipfile.ZipFile(z_path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("a.pth", b"\0" * 5000)  # compresses to a few bytes
    written = []
    monkeypatch.setattr(zipfile.ZipFile, "extract", lambda *a, **k: written.append(a))
    with pytest.raises(PaperProbeError, match="expands to"):
        import_paper_probes(z_path)
    assert written == []


def test_a_sibling_folder_sharing_the_prefix_is_outside(tmp_path):
    """'../ab/x' from folder 'a' lands in 'ab', which a string-prefix test would let through."""
    from probe_core.sd.paper_probes import _extract

    z_path = tmp_path / "bad.zip"
    with zipfile.ZipFile(z_path, "w") as z:
        z.writestr("../ab/x.pth", b"0")
    (tmp_path / "a").mkdir()
    with pytest.raises(PaperProbeError, match="unsafe path"):
        _extract(z_path, tmp_path / "a")
    assert not (tmp_path / "ab").exists()
