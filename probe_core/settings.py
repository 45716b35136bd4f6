"""Every setting that more than one module needs, in one place: asset paths, seed ranges, limits.

    >>> from probe_core import settings
    >>> settings.EMBEDDED_PROBES          # weights/probes/tiny-scenes, from the package root
    >>> settings.SEEDS.probe_test         # range(200000, 200150)

Paths are resolved from the repository root (the folder above this package), so the CLI's
defaults and the app find the shipped assets from any working directory.

Seed ranges. Every scene and every generation is a function of one integer seed; the ranges
below never overlap, so no image used to fit or tune something is used to report on it.
Renders of seeds below 1,000,000 never enter the embedded model's training.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# ----------------------------------------------------------------------------- paths
ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "weights"
DOCS = ROOT / "docs"
EMBEDDED_NAME = "tiny-scenes"  # the name the embedded model's probe sets record
EMBEDDED_MODEL = WEIGHTS / "tiny-scenes"  # the pipeline folder
EMBEDDED_DIT_NAME = "tiny-scenes-dit"  # the scene DiT beside it, trained on the same scenes
EMBEDDED_DIT = WEIGHTS / EMBEDDED_DIT_NAME  # its PixArtAlphaPipeline folder (shares the VAE, text)
EMBEDDED_FINGERPRINT = "49e885887542d65a"  # probing.probes.unet_fingerprint of its UNet
EMBEDDED_LABELER = WEIGHTS / "labeler"  # depth + saliency labeler for its scenes
PROBES_ROOT = WEIGHTS / "probes"  # one folder per probe set; the app looks here
EMBEDDED_PROBES = PROBES_ROOT / "tiny-scenes"  # the default set (+ control/)
EMBEDDED_EVALUATION = DOCS / "probe-eval" / "metrics.json"  # its held-out evaluation
EDIT_REPORTS = DOCS / "interventions"  # intervene-eval writes METHOD/ under here
EMBEDDED_DIT_PROBES = PROBES_ROOT / EMBEDDED_DIT_NAME  # the scene DiT's probe set
DIT_COMPARISON = DOCS / "dit-vs-unet" / "test-442000"  # both models on one sealed range
SHIPPED_EVALUATIONS = {  # a shipped probe set -> its held-out evaluation, for the app's labels
    EMBEDDED_PROBES: EMBEDDED_EVALUATION, EMBEDDED_DIT_PROBES: DIT_COMPARISON / "dit" / "metrics.json"}
PAPER_PROBES = PROBES_ROOT / "sd-v1-4-paper"  # where import-paper-probes puts the authors' set


def shown_path(path) -> str:
    """A path as messages show it: relative to the repository when inside it, else only its
    last part (a visitor of a public server never learns where its files are)."""
    p = Path(path)
    try:
        return p.resolve().relative_to(ROOT).as_posix()
    except (ValueError, OSError):
        return p.name


# ----------------------------------------------------------------------------- seed ranges
@dataclass(frozen=True)
class SeedRanges:
    """Disjoint seed ranges, by what they are used for."""
    labeler_eval: range = range(0, 500)  # held-out renders the labeler is scored on
    vae_psnr: range = range(0, 500)  # held-out renders for the VAE's reconstruction bench
    adherence: range = range(10_000, 10_200)  # captions for the prompt-adherence bench
    adherence_validation: range = range(11_000, 11_200)  # captions two models' adherence is
    # compared on while one is still trained (bench/model_parity.py); a verdict uses a sealed range
    examples: range = range(20_000, 20_006)  # the app's example prompts (captions)
    probe_train: range = range(100_000, 100_400)  # images the shipped probes are fitted on
    probe_test: range = range(200_000, 200_150)  # held-out images the probes are scored on
    probe_validation: range = range(210_000, 210_100)  # where the best layers are picked
    edit_test: range = range(300_000, 300_060)  # the old edit report's images (looked at in
    # every design round since: validation seeds now)
    edit_validation: range = range(310_000, 310_040)  # where edit settings were tuned
    edit_sealed: range = range(446_000, 446_040)  # the edit protocol's latest sealed test
    # range: run once after the design was frozen (`intervene-report`); a retune needs a new
    # range. Used before: 431000-431079 (the first design), 444000-444039 (UNet beside DiT)
    segmenter_validation: range = range(7_000_000, 7_000_200)  # renders the colour segmenter
    segmenter_test: range = range(7_100_000, 7_100_200)  # was checked on / is scored on
    model_train: int = 1_000_000  # first seed of the embedded model's training scenes
    classifier_train: int = 3_000_000  # first seed of the attribute classifier's renders
    labeler_train: int = 4_000_000  # first seed of the labeler's training renders


SEEDS = SeedRanges()

# ----------------------------------------------------------------------------- generation
DEFAULT_STEPS = 15  # the paper's schedule length; the shipped probes are fitted for it
DEFAULT_GUIDANCE = 4.0  # the embedded model's guidance scale (SD's presets carry their own)

# ----------------------------------------------------------------------------- app limits
MAX_PROMPT_CHARS = 1000  # checked before any other work on a prompt
MAX_SEED = 2**32 - 1
MAX_STEPS = 50
MAX_GUIDANCE = 20.0
DISPLAY_SIZE = 256  # pixels per side of images shown in the app
THUMB_SIZE = 96  # filmstrip tiles
SESSION_TTL_S = 3600  # a session's cached run is dropped after this long idle
RUN_CACHE_MB = 1024  # all sessions' cached activations; beyond it the oldest runs are released
