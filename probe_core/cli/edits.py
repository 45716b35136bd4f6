"""`intervene-eval`: score the probe edits (moves and depth pushes) and their controls."""

from __future__ import annotations

import argparse
from dataclasses import replace

from .. import settings
from ..families import denoiser_of
from ..edits.edit_settings import METHOD_DEFAULTS
from .common import (_labeler, _load_with_preset, _prompts, _span, add_probe_set_command,
                     load_with_probes, parse_range)


def parse_directions(text: str) -> tuple[str, ...]:
    """'left,up-right' -> ('left', 'up-right'), each one of the edit evaluation's directions."""
    from ..edits.suite import check_directions

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


def edit_settings_from(args, available_layers: list[str]):
    """The method's `EditSettings` with every override the command line gives, in one call."""

    d = METHOD_DEFAULTS[args.method]
    carry = ({} if args.carry_step is None else
             {"carry_moves": False, "carry_step": None} if args.carry_step < 0 else
             {"carry_moves": True, "carry_step": args.carry_step})
    return replace(
        d, **carry,
        strength=args.strength if args.strength is not None else d.strength,
        steps=args.edit_steps or d.steps, iterations=args.iterations or d.iterations,
        layers=(tuple(args.layers.split(",")) if args.layers
                else d.for_layers(available_layers).layers),
        region_margin=None if args.whole_latent else (
            args.region_margin if args.region_margin is not None else d.region_margin),
        push_room=args.push_room if args.push_room is not None else d.push_room,
        saliency_shrink=(args.saliency_shrink if args.saliency_shrink is not None
                         else d.saliency_shrink),
        push_steps=args.push_steps or (None if args.edit_steps else d.push_steps),
        push_outline=d.push_outline if args.push_outline is None else args.push_outline,
        scheduler=args.scheduler).check()


def _intervene_eval(args) -> int:
    from pathlib import Path

    from ..edits.evaluate import ProbedModel, evaluate_edits
    from ..edits.report import table, write_edit_report
    from ..edits.suite import DIRECTIONS, EditSuite
    from ..probing.hooks import self_attention_layers

    if args.scheduler is not None:
        from ..probing.schedulers import check_scheduler

        args.scheduler = check_scheduler(args.scheduler)  # before loading anything
    if args.pushes_only and args.method == "latent_shift":
        raise ValueError("latent_shift only moves: --pushes-only would leave nothing to run")
    if args.method == "latent_shift":  # a control without probes
        pipe, preset = _load_with_preset(args.model, args.device)
        probes = None
        steps = args.steps or preset.num_inference_steps
        guidance = args.guidance if args.guidance is not None else preset.guidance_scale
    else:
        (pipe, _), expect, probes = load_with_probes(args)
        steps, guidance = expect.num_inference_steps, expect.guidance_scale
    edit_settings = edit_settings_from(args, self_attention_layers(denoiser_of(pipe)))
    suite = EditSuite(args.directions or tuple(DIRECTIONS), moves=not args.pushes_only,
                      pushes=not args.moves_only, depth_delta=args.depth_delta)
    model = ProbedModel(pipe, probes, _labeler(args, pipe), steps, guidance)
    summary, examples = evaluate_edits(model, suite, edit_settings, _prompts(args, args.seeds),
                                       list(args.seeds))
    out = write_edit_report(Path(args.out) / (args.name or args.method), summary, examples)
    print(table(summary))
    print(f"wrote {out}/metrics.json, table.md" + (", examples.png" if examples else ""))
    return 0


def add_parser(sub) -> None:
    """Register intervene-eval on the `scene-probe` sub-parsers."""
    e = add_probe_set_command(
        sub, "intervene-eval", "score interventions and their controls",
        f"e.g. {_span(settings.SEEDS.edit_validation)} (tuning); the sealed report "
        f"({_span(settings.SEEDS.edit_sealed)}) is intervene-report's")
    e.add_argument("--method", choices=list(METHOD_DEFAULTS), default="guided",
                   help="guided (the default), its controls guidance_only and carry_only, "
                        "activation (the paper's), latent_shift (a control for moves)")
    e.add_argument("--strength", type=float)
    e.add_argument("--edit-steps", dest="edit_steps", type=parse_range,
                   help="step indices to edit, e.g. 0-3 (default: the method's)")
    e.add_argument("--iterations", type=int)
    e.add_argument("--layers",
                   help="comma-separated layer names (default: the method's when the model has "
                        "them, for guided its two up_blocks.1 attn1 layers; else all probed)")
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
                        "(default: the method's, 0 for every method)")
    e.add_argument("--saliency-shrink", dest="saliency_shrink", type=int,
                   help="pixels of outline peeled off a moved object's target before steering "
                        "toward it (default: the method's, 0 for every method)")
    e.add_argument("--region-margin", dest="region_margin", type=int,
                   help="guided: confine the latent's update to the edited region grown by "
                        "this many latent pixels (default: the method's, 0 for guided)")
    e.add_argument("--whole-latent", dest="whole_latent", action="store_true",
                   help="guided: let the whole latent move (no region)")
    e.add_argument("--carry-step", dest="carry_step", type=int,
                   help="guided: entering this edit step, a move carries the object's latent "
                        "pixels to its new place before steering (default: the first edit step "
                        "when the method carries moves, as guided does; -1: never)")
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
