"""`scene-probe SUBCOMMAND ...` (or `python -m probe_core SUBCOMMAND ...`): the library's command line.

    python -m probe_core train-model --workdir ~/.cache/scene-probe/tiny-scenes --max-minutes 90
    python -m probe_core train-labeler --out weights/labeler
    python -m probe_core train-probes --seeds 100000-100399 --out weights/probes/tiny-scenes
    python -m probe_core evaluate --seeds 200000-200149 --out docs/probe-eval
    python -m probe_core intervene-eval --seeds 300000-300059 --method guided
    python -m probe_core intervene-report --seeds 310000-310039 --out /tmp/validation
    python -m probe_core shuffled-probes --seeds 100000-100399
    python -m probe_core import-paper-probes probes.zip --out weights/probes/sd-v1-4-paper
    python -m probe_core render --seeds 0-15 --out docs/renders.png
"""

from __future__ import annotations

import argparse
import sys

from . import compare, edit_report, edits, probes, render, train


def build_parser() -> argparse.ArgumentParser:
    """The `scene-probe` parser: each command group's module registers its sub-commands."""
    p = argparse.ArgumentParser(prog="scene-probe", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    train.add_parsers(sub)  # train-model, train-labeler
    probes.add_parsers(sub)  # train-probes, evaluate
    edits.add_parser(sub)  # intervene-eval
    edit_report.add_parser(sub)  # intervene-report
    probes.add_probe_set_tool_parsers(sub)  # layout-baseline, shuffled-probes,
    # import-paper-probes
    render.add_parser(sub)  # render
    compare.add_parser(sub)  # compare-evaluations
    return p


def main(argv: list[str] | None = None) -> int:
    """Run a subcommand; an expected failure (a missing or mismatched file, a model that cannot
    be loaded, bad input) prints one line saying what to do and returns 2."""
    from ..models import ModelUnavailableError
    from ..sd.paper_probes import PaperProbeError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, OSError, ModelUnavailableError, PaperProbeError) as err:
        print(f"scene-probe {args.command}: error: {err}", file=sys.stderr)
        return 2
