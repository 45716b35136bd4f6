"""`compare-evaluations`: two or more models' `evaluate` folders on the same seeds, side by side."""

from __future__ import annotations


def _compare(args) -> int:
    from ..probing.compare import compare_evaluations, load_evaluation, write_comparison

    names = [n.strip() for n in args.names.split(",")] if args.names else None
    picks = args.pick_layers_from or [None] * len(args.evaluations)
    if names and len(names) != len(args.evaluations):
        raise ValueError(f"{len(names)} names for {len(args.evaluations)} evaluations")
    if len(picks) != len(args.evaluations):
        raise ValueError(f"{len(picks)} --pick-layers-from folders for "
                         f"{len(args.evaluations)} evaluations: give one for each, in order")
    evaluations = [load_evaluation(names[k] if names else f"model {k + 1}", folder, picks[k])
                   for k, folder in enumerate(args.evaluations)]
    out = write_comparison(compare_evaluations(evaluations), args.out)
    print((out / "comparison.md").read_text())
    print(f"wrote {out}/comparison.json, comparison.md, emergence.png")
    return 0


def add_parser(sub) -> None:
    c = sub.add_parser("compare-evaluations",
                       help="compare models' probe evaluations on the same seeds: scores, "
                            "emergence by step and by layer, paired differences")
    c.add_argument("evaluations", nargs="+", help="`evaluate` output folders (2 or more)")
    c.add_argument("--names", help="comma-separated model names, in order (default: model 1...)")
    c.add_argument("--pick-layers-from", dest="pick_layers_from", nargs="+",
                   help="each model's evaluation of validation seeds, in order: its best layers "
                        "are picked there (default: on the compared images, said in the report)")
    c.add_argument("--out", required=True, help="folder for comparison.json / .md / .png")
    c.set_defaults(func=_compare)
