"""`intervene-report`: the edit protocol (the default method and every control) on one seed
range, and its headline report."""

from __future__ import annotations

from pathlib import Path

from .. import settings
from .common import _labeler, _prompts, add_probe_set_command, load_with_probes


def _intervene_report(args) -> int:
    from ..edits.evaluate import ProbedModel
    from ..edits.headline import summarise_protocol
    from ..edits.protocol import protocol_runs, run_protocol
    from ..probing.probes import ProbeSet

    out = Path(args.out or settings.EDIT_REPORTS / f"test-{args.seeds.start}")
    names = {r.name for r in protocol_runs()}
    unknown = set(args.only) - names
    if unknown:
        raise ValueError(f"unknown run(s) {', '.join(sorted(unknown))}; runs are "
                         f"{', '.join(sorted(names))}")
    if not args.summarise_only:
        shuffled_dir = Path(args.shuffled or Path(args.probes) / "shuffled")
        if not (shuffled_dir / "probes.json").is_file():  # before the model loads
            raise FileNotFoundError(f"no shuffled-label probe set at "
                                    f"{settings.shown_path(shuffled_dir)} (make it with "
                                    "`scene-probe shuffled-probes`)")
        (pipe, _), expect, probes = load_with_probes(args)
        probe_sets = {"trained": probes, "shuffled": ProbeSet.load(shuffled_dir, expect=expect)}
        model = ProbedModel(pipe, probes, _labeler(args, pipe), expect.num_inference_steps,
                            expect.guidance_scale)
        seeds = list(args.seeds)
        for folder in run_protocol(model, probe_sets, _prompts(args, seeds), seeds, out,
                                   tuple(args.only)):
            print(f"wrote {settings.shown_path(folder)}")
    if not args.only:
        summarise_protocol(out)
        print(f"wrote {settings.shown_path(out)}/report.json, report.md")
    return 0


def add_parser(sub) -> None:
    """Register intervene-report on the `scene-probe` sub-parsers."""
    r = add_probe_set_command(
        sub, "intervene-report", "run the edit protocol (default method and controls) on a "
        "seed range and write its headline report", "a validation range to tune on, or the "
        "sealed range (400000-499999, run once after the design is frozen)")
    r.add_argument("--shuffled", help="the shuffled-label probe set (default: PROBES/shuffled)")
    r.add_argument("--out", help="report folder (default: docs/interventions/test-FIRSTSEED)")
    r.add_argument("--only", nargs="+", default=[],
                   help="run only these protocol runs (e.g. to share the work between "
                        "processes); the report is written by a run without --only")
    r.add_argument("--summarise-only", dest="summarise_only", action="store_true",
                   help="write the report from the runs already in --out")
    r.set_defaults(func=_intervene_report)
