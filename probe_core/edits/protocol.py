"""The edit report's protocol: the app's default method and every control, run on one seed range.

    >>> runs = protocol_runs()                              # ProtocolRun per report column
    >>> run_protocol(model, probe_sets, prompts, seeds, "docs/interventions/test-400000")
    >>> summarise_protocol("docs/interventions/test-400000")   # -> report.json, report.md

Each run is one `intervene-eval` of the same images with its own method, probes and suite; its
folder (metrics.json, table.md, examples.png) is written when it finishes and skipped when it is
there for the same seeds, so a stopped protocol resumes. Seeds: tune on validation ranges;
report from a sealed range (chosen in 400000-499999, named with the commit it was run at, run
once after the design is frozen; a retune needs a new range).
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path

from .edit_settings import METHOD_DEFAULTS, EditSettings
from .evaluate import ProbedModel, evaluate_edits
from .report import write_edit_report
from .suite import EditSuite


@dataclass(frozen=True)
class ProtocolRun:
    """One column of the report: a method on the protocol's images."""
    name: str  # its folder
    method: str  # a METHOD_DEFAULTS key
    role: str  # what it is, in words
    moves: bool = True
    pushes: bool = True
    probes: str = "trained"  # "trained", "shuffled" (fitted to shuffled labels) or "none"
    app: bool = False  # as the app's sliders run it: every object, the sliders' steps

    def settings(self, num_inference_steps: int, available: list[str] | None = None
                 ) -> EditSettings:
        """The method's settings, or the app's (every part at the method's steps), on a model
        with `available` layers where given (its backbone's layer set, as the app picks)."""
        d = METHOD_DEFAULTS[self.method]
        d = d if available is None else d.for_layers(available)
        return d.as_one_edit(*d.steps_within(num_inference_steps)) if self.app else d

    def suite(self) -> EditSuite:
        return EditSuite(moves=self.moves, pushes=self.pushes,
                         objects="all" if self.app else "largest")


def protocol_runs() -> tuple[ProtocolRun, ...]:
    """The default method, each control beside it, and the app's own sliders."""
    return (
        ProtocolRun("guided", "guided", "the default: a move carries the object's latent, then "
                    "the probes' gradient steers the latent; the largest object, the others "
                    "stay"),
        ProtocolRun("carry-only", "carry_only", "control: the carry alone (strength 0: the "
                    "probes are never read)", pushes=False),
        ProtocolRun("guidance-only", "guidance_only", "control: the probes' gradient without "
                    "the carry (its own steps, 0-3)", pushes=False),
        ProtocolRun("shuffled-probes", "guided", "control: the default method steering with "
                    "probes fitted to shuffled labels", probes="shuffled"),
        ProtocolRun("latent-shift", "latent_shift", "control: the latent itself translated",
                    pushes=False, probes="none"),
        ProtocolRun("app", "guided", "the app's sliders: every object as one, every part at "
                    "the sliders' default steps", app=True),
    )


def commit_of(root: Path) -> str:
    """The repository's commit, with '+changes' when its tracked files differ from it."""
    def git(*args):
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True,
                              check=False).stdout.strip()
    head = git("rev-parse", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return head + ("+changes" if dirty else "")


def done(folder: Path, seeds: list[int]) -> bool:
    """Whether `folder` holds a finished run of these seeds."""
    path = folder / "metrics.json"
    if not path.is_file():
        return False
    meta = json.loads(path.read_text()).get("protocol", {})
    return meta.get("seeds") == [min(seeds), max(seeds), len(seeds)]


def run_protocol(model: ProbedModel, probe_sets: dict, prompts: list[str], seeds: list[int],
                 out: str | Path, only: tuple[str, ...] = (), root: Path | None = None
                 ) -> list[Path]:
    """Every protocol run (or those named in `only`) not yet done in `out`: `probe_sets` maps
    "trained" and "shuffled" to a ProbeSet. Returns the folders written."""
    out = Path(out)
    available = probe_sets["trained"].layers  # the probed model's layers
    written = []
    for run in protocol_runs():
        if only and run.name not in only:
            continue
        folder = out / run.name
        if done(folder, seeds):
            continue
        probes = None if run.probes == "none" else probe_sets[run.probes]
        summary, examples = evaluate_edits(
            replace(model, probes=probes), run.suite(),
            run.settings(model.num_inference_steps, available), prompts, seeds)
        summary["protocol"] = {"run": run.name, "role": run.role, "probes": run.probes,
                               "app": run.app, "seeds": [min(seeds), max(seeds), len(seeds)],
                               "commit": commit_of(root or Path(__file__).resolve().parents[2])}
        written.append(write_edit_report(folder, summary, examples))
    return written
