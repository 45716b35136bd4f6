"""Probe sets: `train-probes`, `evaluate`, `collect`, `layout-baseline` and
`import-paper-probes`."""

from __future__ import annotations

import json
from dataclasses import replace

from .. import settings
from .common import (LABELER_HELP, _default_probe_dir, _labeler, _load_with_preset, _prompts,
                     _span, add_probe_set_command, load_with_probes, parse_range)


def _train_probes(args) -> int:
    from ..models import model_name
    from ..probing.collect import settings_for
    from ..probing.evaluate import train_probe_sets
    from ..probing.shards import TrainingRun, process_device

    # under accelerate launch each process loads onto its own GPU
    pipe, preset = _load_with_preset(args.model, process_device(args.device))
    out = args.out or _default_probe_dir(args.model)
    probe_settings = settings_for(
        pipe, model_name(args.model), args.steps or preset.num_inference_steps,
        args.guidance if args.guidance is not None else preset.guidance_scale,
        layers=args.layers.split(",") if args.layers else None, site=args.site,
        readout=args.readout, depth_offset=args.depth_offset)
    probe_settings = replace(probe_settings, channels=args.channels)
    run = TrainingRun(lam=args.lam, workdir=args.workdir, chunk_size=args.chunk_size,
                      keep_workdir=not args.discard_chunks)
    probes, _ = train_probe_sets(pipe, probe_settings, _labeler(args, pipe),
                                 _prompts(args, args.seeds), list(args.seeds), out, run)
    print(f"saved {len(probes.keys())} probes (and as many control probes) to {out}")
    if not args.discard_chunks:
        print(f"the activations stay in {args.workdir or str(out) + '-collect'} "
              "(probe_core.probing.dataset.ActivationExport reads them; --discard-chunks "
              "removes them)")
    return 0


def _collect(args) -> int:
    from ..families import denoiser_of
    from ..models import model_name
    from ..probing.collect import permuted_unet, settings_for
    from ..probing.shards import ChunkShare, collect_chunks, process_device, process_state

    pipe, preset = _load_with_preset(args.model, process_device(args.device))
    probe_settings = settings_for(
        pipe, model_name(args.model), args.steps or preset.num_inference_steps,
        args.guidance if args.guidance is not None else preset.guidance_scale,
        layers=args.layers.split(",") if args.layers else None, site=args.site)
    index, count, barrier = process_state()
    control = None if args.no_control else permuted_unet(denoiser_of(pipe))
    collect_chunks(pipe, probe_settings, _labeler(args, pipe), _prompts(args, args.seeds),
                   list(args.seeds), ChunkShare(args.out, args.chunk_size, index, count),
                   control)
    barrier()
    print(f"{len(args.seeds)} images' activations and labels in {args.out} (safetensors "
          "shards and collect-manifest.json; probe_core.probing.dataset.ActivationExport "
          "reads them)")
    return 0


def _evaluate(args) -> int:
    from pathlib import Path

    from ..probing.evaluate import EvaluationRun, evaluate_probe_sets
    from ..probing.layout import load_layout
    from ..probing.probes import ProbeSet
    from ..probing.report import picked_layers

    (pipe, _), expect, probes = load_with_probes(args)
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
                               EvaluationRun(chunk_size=args.chunk_size,
                                             layout=load_layout(args.probes), picked=picked))
    print(json.dumps({k: {kk: vv for kk, vv in v.items() if kk != "labeler_on_x0"}
                      for k, v in head.items()}, indent=2))
    print(f"wrote {args.out}/metrics.json, table.md, probe_scores.png")
    return 0


def _layout_baseline(args) -> int:
    from ..probing.layout import collect_layout, save_layout

    (pipe, _), expect, _ = load_with_probes(args)  # refuses a set made for another model
    layout = collect_layout(pipe, _prompts(args, args.seeds), list(args.seeds),
                            _labeler(args, pipe), expect.num_inference_steps,
                            expect.guidance_scale)
    print(f"saved {save_layout(layout, args.probes)}")
    return 0


def _shuffled_probes(args) -> int:
    from ..probing.shuffled import fit_shuffled_probes

    (pipe, _), expect, probes = load_with_probes(args)  # the trained set's own settings
    shuffled = fit_shuffled_probes(pipe, probes.settings, _labeler(args, pipe),
                                   _prompts(args, args.seeds), list(args.seeds), args.lam)
    out = args.out or f"{args.probes}/shuffled"
    shuffled.save(out)
    print(f"saved {len(shuffled.keys())} probes fitted to shuffled labels to "
          f"{settings.shown_path(out)}")
    return 0


def _import_paper_probes(args) -> int:
    from ..sd.paper_probes import import_paper_probes

    probes = import_paper_probes(args.source, final=args.final)
    probes.save(args.out)
    print(f"imported {len(probes.keys())} probes to {args.out}")
    return 0


def _add_generating_command(sub, name: str, func, helptext: str):
    """A sub-command that generates and labels images: the arguments train-probes and evaluate
    share."""
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
    return c


def _add_train_probes(sub) -> None:
    c = _add_generating_command(sub, "train-probes", _train_probes,
                                "fit depth and saliency probes (and control probes)")
    c.add_argument("--out", help="default: weights/probes/<model name>")
    c.add_argument("--steps", type=int, help="num_inference_steps (default: preset)")
    c.add_argument("--guidance", type=float, help="guidance_scale (default: preset)")
    c.add_argument("--layers", help="comma-separated layer names (default: all attn1)")
    c.add_argument("--workdir", help="where chunks of activations go; an interrupted "
                                     "run resumes from it (default: OUT-collect)")
    c.add_argument("--lam", type=float, default=1e-3, help="relative ridge penalty")
    c.add_argument("--channels", choices=["raw", "rms", "drop-massive"], default="raw",
                   help="how the fit sees the layer's channels: as they are (the paper's), "
                        "each scaled by its RMS, or the massive ones (over 100x the median "
                        "channel's RMS, as in diffusion transformers) left out")
    c.add_argument("--discard-chunks", dest="discard_chunks", action="store_true",
                   help="remove the activation chunks after the merge (kept by default: "
                        "an activation data set; at SD size they take many GB)")
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


def _add_evaluate(sub) -> None:
    c = _add_generating_command(sub, "evaluate", _evaluate,
                                "score probes on held-out images; write a report")
    c.add_argument("--probes", default=str(settings.EMBEDDED_PROBES))
    c.add_argument("--out", default=str(settings.EMBEDDED_EVALUATION.parent))
    c.add_argument("--pick-layers-from", dest="pick_layers_from",
                   help="an evaluation folder (of validation seeds) whose best layers "
                        "this report uses, instead of picking them on its own images")


def _add_collect(sub) -> None:
    c = _add_generating_command(sub, "collect", _collect,
                                "write activations and labels as a data set (safetensors "
                                "shards and a manifest)")
    c.add_argument("--out", required=True, help="the export's folder (an interrupted run "
                                                "resumes there)")
    c.add_argument("--steps", type=int, help="num_inference_steps (default: preset)")
    c.add_argument("--guidance", type=float, help="guidance_scale (default: preset)")
    c.add_argument("--layers", help="comma-separated layer names (default: all)")
    c.add_argument("--site", choices=["attn1", "block"], default="attn1",
                   help="the attention output (the paper's) or its block's output")
    c.add_argument("--no-control", dest="no_control", action="store_true",
                   help="leave out the permuted model's activations (the control)")


def add_parsers(sub) -> None:
    """Register train-probes, evaluate and collect on the `scene-probe` sub-parsers."""
    _add_train_probes(sub)
    _add_evaluate(sub)
    _add_collect(sub)


def add_probe_set_tool_parsers(sub) -> None:
    """Register layout-baseline, shuffled-probes and import-paper-probes on the `scene-probe`
    sub-parsers."""
    lb = add_probe_set_command(
        sub, "layout-baseline", "save the image-blind layout control with a probe set made "
        "before train-probes saved it (its training seeds again)",
        f"the probe set's training seeds, e.g. {_span(settings.SEEDS.probe_train)}")
    lb.set_defaults(func=_layout_baseline)

    sp = add_probe_set_command(
        sub, "shuffled-probes", "fit the edit control: a probe set like --probes, each image's "
        "activations against another image's labels",
        f"its training seeds, e.g. {_span(settings.SEEDS.probe_train)}",
        "the trained probe set whose settings the control copies")
    sp.add_argument("--lam", type=float, default=1e-3, help="relative ridge penalty")
    sp.add_argument("--out", help="where to save it (default: PROBES/shuffled)")
    sp.set_defaults(func=_shuffled_probes)

    ip = sub.add_parser("import-paper-probes",
                        help="convert the authors' SD v1.4 probe files into a probe set")
    ip.add_argument("source", help="the authors' zip or its unzipped folder")
    ip.add_argument("--out", default=str(settings.PAPER_PROBES))
    ip.add_argument("--final", action="store_true",
                    help="import the *_final files instead of the best-on-held-out ones")
    ip.set_defaults(func=_import_paper_probes)
