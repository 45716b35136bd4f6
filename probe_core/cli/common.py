"""What the command groups share: seed ranges, prompts, loading the model and its labeler."""

from __future__ import annotations

import argparse

from .. import settings

LABELER_HELP = ("a scene-labeler folder, 'hf' (DPT-Large + CLIPSeg), a depth model "
                "(depth-anything-v2-small, zoedepth, depth-pro, dpt-large: with CLIPSeg) or "
                "'DEPTH_MODEL,SALIENCY_MODEL' (saliency: clipseg, or mask2former for a "
                "prompt-free object); "
                "default: weights/labeler for the embedded model, 'hf' for others")


def add_probe_set_command(sub, name: str, helptext: str, seeds_help: str,
                          probes_help: str | None = None) -> argparse.ArgumentParser:
    """A sub-command that loads a model, its labeler and a probe set and generates images from
    seeds (and prompts): the arguments they share (--model, --labeler, --device, --probes,
    --seeds, --prompts)."""
    c = sub.add_parser(name, help=helptext)
    c.add_argument("--model", default=str(settings.EMBEDDED_MODEL))
    c.add_argument("--labeler", help=LABELER_HELP)
    c.add_argument("--device", help="cuda or cpu (default: cuda + float16 when present)")
    c.add_argument("--probes", default=str(settings.EMBEDDED_PROBES), help=probes_help)
    c.add_argument("--seeds", type=parse_range, required=True, help=seeds_help)
    c.add_argument("--prompts", help="file with one prompt a line, cycled over the seeds")
    return c


def _span(seeds: range) -> str:
    """range(100, 200) -> '100-199', as --seeds takes it."""
    return f"{seeds[0]}-{seeds[-1]}"


def parse_range(text: str) -> range:
    """'A-B' (inclusive) or 'A' -> range."""
    try:
        if "-" in text:
            a, b = text.split("-", 1)
            r = range(int(a), int(b) + 1)
        else:
            r = range(int(text), int(text) + 1)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a seed range like 0-99, got {text!r}") from None
    if len(r) == 0:
        raise argparse.ArgumentTypeError(f"empty seed range {text!r}")
    return r


def _load(model: str, device: str | None = None):
    """The pipeline (with its preset's scheduler); ModelUnavailableError says what to do."""
    return _load_with_preset(model, device)[0]


def _load_with_preset(model: str, device: str | None = None):
    """(pipe, preset); ModelUnavailableError says what to do (main prints it)."""
    from ..models import load_model

    return load_model(model, device=device)


def _require_probe_set(folder: str) -> None:
    """Fail before loading any model when the probe set is not there."""
    from pathlib import Path

    if not (Path(folder) / "probes.json").is_file():
        raise FileNotFoundError(f"no probe set at {folder} (needs probes.json and "
                                "probes.safetensors): train one with `scene-probe train-probes`"
                                " or pass --probes")


def load_with_probes(args):
    """(pipe and its preset, the probe set's expected settings, the probe set at
    `args.probes`): the probe set checked to be there before the model loads, and refused when
    it was made for another model."""
    from ..models import model_name
    from ..probing.collect import expected_settings, load_probes_for

    _require_probe_set(args.probes)
    pipe, preset = _load_with_preset(args.model, args.device)
    expect = expected_settings(pipe, model_name(args.model), args.probes)
    return (pipe, preset), expect, load_probes_for(pipe, model_name(args.model), args.probes)


def _default_probe_dir(model: str) -> str:
    """weights/probes/<model name>: tiny-scenes for the embedded model, e.g.
    CompVis--stable-diffusion-v1-4 for a hub id (never the shipped set for another model)."""
    from ..models import EMBEDDED, is_embedded, model_name

    name = EMBEDDED if is_embedded(model) else model_name(model).replace("/", "--")
    return str(settings.PROBES_ROOT / name)


def _labeler(args, pipe):
    """--labeler, or the model's own (the shipped scene labeler, or DPT + CLIPSeg for SD)."""
    from ..sd.labelers import load_labeler

    return load_labeler(args.labeler, args.model, device=str(pipe.device))


def prompts_for(seeds: list[int], prompts: list[str] | None = None) -> list[str]:
    """The given prompts, cycled over the seeds; without any, each seed's own scene caption."""
    if prompts:
        return [prompts[k % len(prompts)] for k in range(len(seeds))]
    from ..world.scenes import scene_captions

    return scene_captions(seeds)


def _prompts(args, seeds):
    """--prompts (one a line, blank lines skipped) cycled over `seeds`, else their captions."""
    lines = None
    if args.prompts:
        with open(args.prompts) as f:
            lines = [ln.strip() for ln in f if ln.strip()]
        if not lines:
            raise ValueError(f"{args.prompts} has no prompts")
    return prompts_for(list(seeds), lines)
