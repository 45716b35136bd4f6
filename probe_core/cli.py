"""`scene-probe SUBCOMMAND ...` (or `python -m probe_core SUBCOMMAND ...`): the library's command line.

    python -m probe_core train-model --workdir ~/.cache/scene-probe/tiny-scenes --max-minutes 90
    python -m probe_core train-labeler --out weights/labeler
    python -m probe_core train-probes --seeds 100000-100399 --out weights/probes/tiny-scenes
    python -m probe_core evaluate --seeds 200000-200149 --out docs/probe-eval
    python -m probe_core intervene-eval --seeds 300000-300059 --method guided
    python -m probe_core import-paper-probes probes.zip --out weights/probes/sd-v1-4-paper
    python -m probe_core render --seeds 0-15 --out docs/renders.png
"""

from __future__ import annotations

import argparse
import json
import sys

from . import settings


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


def parse_directions(text: str) -> tuple[str, ...]:
    """'left,up-right' -> ('left', 'up-right'), each one of the edit evaluation's directions."""
    from .edits.evaluate import check_directions

    try:
        return check_directions(d.strip() for d in text.split(",") if d.strip())
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def parse_pushes(text: str) -> tuple[str, ...]:
    """'farther' / 'nearer,farther' / 'none' -> the depth pushes named, as a tuple."""
    names = tuple(w.strip() for w in text.split(",") if w.strip() and w.strip() != "none")
    unknown = [w for w in names if w not in ("nearer", "farther")]
    if unknown:
        raise argparse.ArgumentTypeError(f"expected nearer, farther or none, got {text!r}")
    return names


def _train_model(args) -> int:
    from .world.tiny_train import TrainConfig, train

    cfg = TrainConfig()
    for key, value in vars(args).items():
        if hasattr(cfg, key) and value is not None:
            setattr(cfg, key, value)
    if args.snr_shift is not None:
        cfg.model.snr_shift = args.snr_shift
    print(json.dumps(train(cfg), indent=2))
    return 0


def _render(args) -> int:
    import numpy as np
    from PIL import Image

    from .world.scenes import render_scene, sample_scene

    scenes = [render_scene(sample_scene(s)) for s in args.seeds]
    for s, sc in zip(args.seeds, scenes):
        print(f"{s}\t{sc.caption}")
    if args.out:
        cols = min(8, len(scenes))
        rows = -(-len(scenes) // cols)
        grid = np.zeros((rows * 64, cols * 64, 3), np.uint8)
        for k, sc in enumerate(scenes):
            r, c = divmod(k, cols)
            grid[r * 64:(r + 1) * 64, c * 64:(c + 1) * 64] = sc.image
        Image.fromarray(grid).resize((cols * 128, rows * 128), Image.NEAREST).save(args.out)
    return 0


def _load(model: str, device: str | None = None):
    """The pipeline (with its preset's scheduler), or exit with what to do."""
    return _load_with_preset(model, device)[0]


def _load_with_preset(model: str, device: str | None = None):
    """(pipe, preset); ModelUnavailableError says what to do (main prints it)."""
    from .models import load_model

    return load_model(model, device=device)


def _require_probe_set(folder: str) -> None:
    """Fail before loading any model when the probe set is not there."""
    from pathlib import Path

    if not (Path(folder) / "probes.json").is_file():
        raise FileNotFoundError(f"no probe set at {folder} (needs probes.json and "
                                "probes.safetensors): train one with `scene-probe train-probes`"
                                " or pass --probes")


def _default_probe_dir(model: str) -> str:
    """weights/probes/<model name>: tiny-scenes for the embedded model, e.g.
    CompVis--stable-diffusion-v1-4 for a hub id (never the shipped set for another model)."""
    from .models import EMBEDDED, is_embedded, model_name

    name = EMBEDDED if is_embedded(model) else model_name(model).replace("/", "--")
    return str(settings.PROBES_ROOT / name)


def _labeler(args, pipe):
    """--labeler, or the model's own (the shipped scene labeler, or DPT + CLIPSeg for SD)."""
    from .sd.labelers import load_labeler

    return load_labeler(args.labeler, args.model, device=str(pipe.device))


def prompts_for(seeds: list[int], prompts: list[str] | None = None) -> list[str]:
    """The given prompts, cycled over the seeds; without any, each seed's own scene caption."""
    if prompts:
        return [prompts[k % len(prompts)] for k in range(len(seeds))]
    from .world.scenes import scene_captions

    return scene_captions(seeds)


def _prompts(args, seeds):
    lines = None
    if args.prompts:
        with open(args.prompts) as f:
            lines = [ln.strip() for ln in f if ln.strip()]
        if not lines:
            raise ValueError(f"{args.prompts} has no prompts")
    return prompts_for(list(seeds), lines)


def _train_labeler(args) -> int:
    from .world.labeler import build_scene_labeler

    labeler = build_scene_labeler(_load(args.model).vae, args.n_images, args.steps, args.n_eval,
                                  args.varied_share)
    labeler.save(args.out)
    print(json.dumps(labeler.info["held_out"], indent=2))
    return 0


def _train_probes(args) -> int:
    from .models import model_name
    from .probing.collect import settings_for
    from .probing.evaluate import train_probe_sets
    from .probing.shards import process_device

    # under accelerate launch each process loads onto its own GPU
    pipe, preset = _load_with_preset(args.model, process_device(args.device))
    out = args.out or _default_probe_dir(args.model)
    settings = settings_for(pipe, model_name(args.model), args.steps or preset.num_inference_steps,
                            args.guidance if args.guidance is not None else preset.guidance_scale,
                            layers=args.layers.split(",") if args.layers else None, site=args.site,
                            readout=args.readout, depth_offset=args.depth_offset)
    probes, _ = train_probe_sets(pipe, settings, _labeler(args, pipe), _prompts(args, args.seeds),
                                 list(args.seeds), out, args.lam, workdir=args.workdir,
                                 chunk_size=args.chunk_size)
    print(f"saved {len(probes.keys())} probes (and as many control probes) to {out}")
    return 0


def _evaluate(args) -> int:
    from pathlib import Path

    from .models import model_name
    from .probing.collect import expected_settings
    from .probing.evaluate import evaluate_probe_sets
    from .probing.layout import load_layout
    from .probing.probes import ProbeSet
    from .probing.report import picked_layers

    _require_probe_set(args.probes)
    pipe = _load(args.model, args.device)
    expect = expected_settings(pipe, model_name(args.model), args.probes)
    probes = ProbeSet.load(args.probes, expect=expect)
    control_dir = Path(args.probes) / "control"
    control = ProbeSet.load(control_dir, expect=expect) if control_dir.exists() else None
    picked = None
    if args.pick_layers_from:
        source = Path(args.pick_layers_from) / "metrics.json"
        if not source.is_file():
            raise FileNotFoundError(f"no evaluation at {settings.shown_path(source)} "
                                    "(run evaluate on the validation seeds first)")
        picked = picked_layers(json.loads(source.read_text()))
    head = evaluate_probe_sets(pipe, probes, control, _labeler(args, pipe),
                               _prompts(args, args.seeds), list(args.seeds), args.out,
                               chunk_size=args.chunk_size, layout=load_layout(args.probes),
                               picked=picked)
    print(json.dumps({k: {kk: vv for kk, vv in v.items() if kk != "labeler_on_x0"}
                      for k, v in head.items()}, indent=2))
    print(f"wrote {args.out}/metrics.json, table.md, probe_scores.png")
    return 0


def _intervene_eval(args) -> int:
    from pathlib import Path

    from .edits.evaluate import DIRECTIONS, evaluate_edits, table, write_edit_report
    from .edits.methods import METHOD_DEFAULTS, default_layers
    from .models import model_name
    from .probing.collect import expected_settings
    from .probing.hooks import self_attention_layers
    from .probing.probes import ProbeSet

    if args.scheduler is not None:
        from .probing.schedulers import check_scheduler

        args.scheduler = check_scheduler(args.scheduler)  # before loading anything
    if args.pushes_only and args.method == "latent_shift":
        raise ValueError("latent_shift only moves: --pushes-only would leave nothing to run")
    if args.method != "latent_shift":
        _require_probe_set(args.probes)
    pipe, preset = _load_with_preset(args.model, args.device)
    probes = None
    steps = args.steps or preset.num_inference_steps
    guidance = args.guidance if args.guidance is not None else preset.guidance_scale
    if args.method != "latent_shift":
        expect = expected_settings(pipe, model_name(args.model), args.probes)
        steps, guidance = expect.num_inference_steps, expect.guidance_scale
        probes = ProbeSet.load(args.probes, expect=expect)
    d = METHOD_DEFAULTS[args.method]
    edit_steps = args.edit_steps or d.steps
    summary, examples = evaluate_edits(
        pipe, probes, _labeler(args, pipe), _prompts(args, args.seeds),
        list(args.seeds), args.method,
        args.strength if args.strength is not None else d.strength, edit_steps,
        args.iterations or d.iterations, steps, guidance,
        layers=args.layers.split(",") if args.layers else default_layers(
            args.method, self_attention_layers(pipe.unet)), depth_delta=args.depth_delta,
        directions=args.directions or tuple(DIRECTIONS),
        region_margin=None if args.whole_latent else (
            args.region_margin if args.region_margin is not None else d.region_margin),
        push_room=args.push_room if args.push_room is not None else d.push_room,
        saliency_shrink=(args.saliency_shrink if args.saliency_shrink is not None
                         else d.saliency_shrink),
        carry_step=((min(edit_steps) if d.carry_moves else None) if args.carry_step is None
                    else None if args.carry_step < 0 else args.carry_step),
        pushes=not args.moves_only, moves=not args.pushes_only,
        push_steps=args.push_steps or (None if args.edit_steps else d.push_steps),
        push_outline=d.push_outline if args.push_outline is None else args.push_outline,
        scheduler=args.scheduler)
    out = write_edit_report(Path(args.out) / (args.name or args.method), summary, examples)
    print(table(summary))
    print(f"wrote {out}/metrics.json, table.md" + (", examples.png" if examples else ""))
    return 0


def _layout_baseline(args) -> int:
    from .models import model_name
    from .probing.collect import expected_settings
    from .probing.layout import collect_layout, save_layout
    from .probing.probes import ProbeSet

    _require_probe_set(args.probes)
    pipe = _load(args.model, args.device)
    expect = expected_settings(pipe, model_name(args.model), args.probes)
    ProbeSet.load(args.probes, expect=expect)  # refuse a set made for another model
    layout = collect_layout(pipe, _prompts(args, args.seeds), list(args.seeds),
                            _labeler(args, pipe), expect.num_inference_steps,
                            expect.guidance_scale)
    print(f"saved {save_layout(layout, args.probes)}")
    return 0


def _import_paper_probes(args) -> int:
    from .sd.paper_probes import import_paper_probes

    probes = import_paper_probes(args.source, final=args.final)
    probes.save(args.out)
    print(f"imported {len(probes.keys())} probes to {args.out}")
    return 0


LABELER_HELP = ("a scene-labeler folder, 'hf' (DPT-Large + CLIPSeg) or 'DEPTH_MODEL,SALIENCY_MODEL'; "
                "default: weights/labeler for the embedded model, 'hf' for others")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="scene-probe", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train-model", help="train (or resume) the embedded tiny-scenes model")
    t.add_argument("--workdir", help="data cache, checkpoints and logs (resumes from here)")
    t.add_argument("--out", help=f"pipeline folder to export to (default {settings.EMBEDDED_MODEL})")
    t.add_argument("--init-from", dest="init_from",
                   help="warm start from a saved pipeline folder when workdir has no checkpoint")
    t.add_argument("--n-scenes", dest="n_scenes", type=int)
    t.add_argument("--vae-steps", dest="vae_steps", type=int)
    t.add_argument("--unet-steps", dest="unet_steps", type=int)
    t.add_argument("--vae-batch", dest="vae_batch", type=int)
    t.add_argument("--unet-batch", dest="unet_batch", type=int)
    t.add_argument("--unet-lr", dest="unet_lr", type=float)
    t.add_argument("--export-every", dest="export_every", type=int)
    t.add_argument("--ckpt-every", dest="ckpt_every", type=int)
    t.add_argument("--max-minutes", dest="max_minutes", type=float,
                   help="stop (checkpoint + export) after this many minutes")
    t.add_argument("--threads", type=int)
    t.add_argument("--device", help="cpu (default) or cuda")
    t.add_argument("--snr-shift", dest="snr_shift", type=float,
                   help="divide the noise schedule's SNR by this (default 1: SD's schedule; "
                        "16 puts 16x16 latents in SD's 64x64 regime)")
    t.set_defaults(func=_train_model)

    lab = sub.add_parser("train-labeler", help="train the depth/saliency labeler on renders")
    lab.add_argument("--model", default=str(settings.EMBEDDED_MODEL),
                     help="pipeline whose VAE to use")
    lab.add_argument("--out", default=str(settings.EMBEDDED_LABELER))
    lab.add_argument("--n-images", dest="n_images", type=int, default=8000)
    lab.add_argument("--steps", type=int, default=3000)
    lab.add_argument("--n-eval", dest="n_eval", type=int, default=len(settings.SEEDS.labeler_eval),
                     help="held-out renders (the first N of SEEDS.labeler_eval) to score it on")
    lab.add_argument("--varied-share", dest="varied_share", type=float, default=0.5,
                     help="share of the training renders drawn as varied scenes (other cameras "
                          "and light, floor-coloured and grey objects, touching objects)")
    lab.set_defaults(func=_train_labeler)

    for name, func, helptext in (
            ("train-probes", _train_probes, "fit depth and saliency probes (and control probes)"),
            ("evaluate", _evaluate, "score probes on held-out images; write a report")):
        c = sub.add_parser(name, help=helptext)
        c.add_argument("--model", default=str(settings.EMBEDDED_MODEL),
                       help="the embedded model's folder, a hub id or a diffusers folder")
        c.add_argument("--labeler", help=LABELER_HELP)
        c.add_argument("--device", help="cuda or cpu (default: cuda + float16 when present)")
        c.add_argument("--chunk-size", dest="chunk_size", type=int, default=16,
                       help="images generated and kept in memory at a time")
        c.add_argument("--seeds", type=parse_range, required=True,
                       help=f"generation seeds, e.g. {_span(settings.SEEDS.probe_train)} for "
                            f"train-probes, {_span(settings.SEEDS.probe_test)} for evaluate")
        c.add_argument("--prompts", help="file with one prompt a line, cycled over the seeds; "
                                         "default: each seed's own scene caption")
        c.set_defaults(func=func)
        if name == "train-probes":
            c.add_argument("--out", help="default: weights/probes/<model name>")
            c.add_argument("--steps", type=int, help="num_inference_steps (default: preset)")
            c.add_argument("--guidance", type=float, help="guidance_scale (default: preset)")
            c.add_argument("--layers", help="comma-separated layer names (default: all attn1)")
            c.add_argument("--workdir", help="where chunks of activations go; an interrupted "
                                             "run resumes from it (default: OUT-collect)")
            c.add_argument("--lam", type=float, default=1e-3, help="relative ridge penalty")
            c.add_argument("--site", choices=["attn1", "block"], default="attn1",
                           help="probe the attn1 output (the paper's) or the transformer "
                                "block's output (the residual stream)")
            c.add_argument("--readout", choices=["bilinear", "nearest"], default="bilinear",
                           help="how the token grid of probe outputs becomes pixels: bilinear "
                                "between token centres (default), or nearest (the paper's)")
            c.add_argument("--depth-offset", dest="depth_offset", choices=["layout", "none"],
                           default="layout",
                           help="add the training images' mean depth map (on each layer's token "
                                "grid) to every depth output, so the probe reads depth beyond "
                                "the layout (default), or none (the paper's bias-free probe)")
        else:
            c.add_argument("--probes", default=str(settings.EMBEDDED_PROBES))
            c.add_argument("--out", default=str(settings.EMBEDDED_EVALUATION.parent))
            c.add_argument("--pick-layers-from", dest="pick_layers_from",
                           help="an evaluation folder (of validation seeds) whose best layers "
                                "this report uses, instead of picking them on its own images")

    e = sub.add_parser("intervene-eval", help="score interventions and their controls")
    e.add_argument("--model", default=str(settings.EMBEDDED_MODEL))
    e.add_argument("--labeler", help=LABELER_HELP)
    e.add_argument("--device", help="cuda or cpu (default: cuda + float16 when present)")
    e.add_argument("--probes", default=str(settings.EMBEDDED_PROBES))
    e.add_argument("--seeds", type=parse_range, required=True,
                   help=f"e.g. {_span(settings.SEEDS.edit_test)} (report), "
                        f"{_span(settings.SEEDS.edit_validation)} (tuning)")
    e.add_argument("--prompts", help="file with one prompt a line, cycled over the seeds")
    e.add_argument("--method", choices=["guided", "activation", "latent_shift"], default="guided")
    e.add_argument("--strength", type=float)
    e.add_argument("--edit-steps", dest="edit_steps", type=parse_range,
                   help="step indices to edit, e.g. 0-3 (default: the method's)")
    e.add_argument("--iterations", type=int)
    e.add_argument("--layers", help="comma-separated layer names (default: all probed)")
    e.add_argument("--depth-delta", dest="depth_delta", type=float, default=2.0,
                   help="size of the depth push, in z-units of inverse depth")
    e.add_argument("--steps", type=int,
                   help="num_inference_steps for latent_shift (default: the model's preset)")
    e.add_argument("--guidance", type=float,
                   help="guidance_scale for latent_shift (default: the model's preset)")
    e.add_argument("--out", default=str(settings.EDIT_REPORTS))
    e.add_argument("--name", help="report folder under --out (default: the method's name)")
    e.add_argument("--directions", type=parse_directions,
                   help="comma-separated move directions (default: all 8)")
    e.add_argument("--push-room", dest="push_room", type=int,
                   help="guided: a depth push may also change this many pixels above the "
                        "object (farther) or below it (nearer), where a pushed object goes "
                        "(default: the method's)")
    e.add_argument("--saliency-shrink", dest="saliency_shrink", type=int,
                   help="pixels of outline peeled off a moved object's target before steering "
                        "toward it (default: the method's, 1 for guided)")
    e.add_argument("--region-margin", dest="region_margin", type=int,
                   help="guided: confine the latent's update to the edited region grown by "
                        "this many latent pixels (default: the method's, 0 for guided)")
    e.add_argument("--whole-latent", dest="whole_latent", action="store_true",
                   help="guided: let the whole latent move (no region)")
    e.add_argument("--carry-step", dest="carry_step", type=int,
                   help="guided: entering this edit step, a move carries the object's latent "
                        "pixels to its new place before steering (default: the first edit step "
                        "where the method carries moves; -1: never)")
    e.add_argument("--push-steps", dest="push_steps", type=parse_range,
                   help="edit steps of the depth pushes, e.g. 0-3 (default: the method's; "
                        "with --edit-steps alone, the same steps)")
    e.add_argument("--scheduler",
                   help="sample every run with this sampler instead of the model's own: DDIM, "
                        "LMS, Euler or 'DPM-Solver multistep' (the probes read each step by "
                        "the probed step nearest in time)")
    only = e.add_mutually_exclusive_group()
    only.add_argument("--moves-only", dest="moves_only", action="store_true",
                      help="run the moves and their controls, no depth pushes")
    only.add_argument("--pushes-only", dest="pushes_only", action="store_true",
                      help="run the depth pushes and their controls, no moves")
    e.add_argument("--push-outline", dest="push_outline", type=parse_pushes,
                   help="guided: these pushes (nearer, farther, both comma-separated, or none) "
                        "also steer the saliency probes toward the objects where they are, so "
                        "they change depth, not outlines (default: the method's)")
    e.set_defaults(func=_intervene_eval)

    lb = sub.add_parser("layout-baseline",
                        help="save the image-blind layout control with a probe set made before "
                             "train-probes saved it (its training seeds again)")
    lb.add_argument("--model", default=str(settings.EMBEDDED_MODEL))
    lb.add_argument("--labeler", help=LABELER_HELP)
    lb.add_argument("--device", help="cuda or cpu (default: cuda + float16 when present)")
    lb.add_argument("--probes", default=str(settings.EMBEDDED_PROBES))
    lb.add_argument("--seeds", type=parse_range, required=True,
                    help=f"the probe set's training seeds, e.g. {_span(settings.SEEDS.probe_train)}")
    lb.add_argument("--prompts", help="file with one prompt a line, cycled over the seeds")
    lb.set_defaults(func=_layout_baseline)

    ip = sub.add_parser("import-paper-probes",
                        help="convert the authors' SD v1.4 probe files into a probe set")
    ip.add_argument("source", help="the authors' zip or its unzipped folder")
    ip.add_argument("--out", default=str(settings.PAPER_PROBES))
    ip.add_argument("--final", action="store_true",
                    help="import the *_final files instead of the best-on-held-out ones")
    ip.set_defaults(func=_import_paper_probes)

    r = sub.add_parser("render", help="render scenes and print their captions")
    r.add_argument("--seeds", type=parse_range, default=range(0, 16))
    r.add_argument("--out", help="write a PNG grid here")
    r.set_defaults(func=_render)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run a subcommand; an expected failure (a missing or mismatched file, a model that cannot
    be loaded, bad input) prints one line saying what to do and returns 2."""
    from .models import ModelUnavailableError
    from .sd.paper_probes import PaperProbeError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, OSError, ModelUnavailableError, PaperProbeError) as err:
        print(f"scene-probe {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
