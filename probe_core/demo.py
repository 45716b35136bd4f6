"""ProbeDemo: the plain-Python facade the app calls (and the tests drive). No gradio import here.

    >>> demo = ProbeDemo.embedded()
    >>> for run in demo.stream("a large red sphere on a gray plain floor", seed=0):
    ...     view = demo.view(run, run.steps[-1].index, "best")   # images for the newest step
    >>> for update in demo.intervene(run, move_x=16): ...        # streams the edited re-run
    >>> paths = demo.export(run, "out/")                         # GIF, PNGs, JSON

Every public method validates its input and raises `ValueError` with a message fit to show a user.
A `Run` holds one generation (every step's activations, x0 image and resume point) and caches
the probe maps computed from it, so scrubbing and switching layers never recompute the model.
"""

from __future__ import annotations

import json
import math
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from .denoise import StepState, decode_latents, denoise
from .edit_scores import score_depth, score_move
from .hooks import self_attention_layers
from .intervene import (DEFAULT_METHOD, METHOD_DEFAULTS, METHODS, Edit, EditRun, default_layers,
                        intervene_stream)
from .metrics import dice, pearson
from .probes import ProbeSet
from .scenes import render_scene, sample_scene
from .targets import centroid, move_mask, push_depth, scale_mask
from .tiny_ldm import DEFAULT_GUIDANCE, check_prompt, generate, is_word_level, load_pipeline
from .viz import blend, colorize_depth, figure_to_array, frames_to_gif, overlay_mask, to_size, upscale

ROOT = Path(__file__).resolve().parents[1]
EMBEDDED_MODEL = ROOT / "weights" / "tiny-scenes"
EMBEDDED_PROBES = ROOT / "weights" / "probes" / "tiny-scenes"
EMBEDDED_LABELER = ROOT / "weights" / "labeler"
EMBEDDED_EVALUATION = ROOT / "docs" / "probe-eval" / "metrics.json"
MAX_SEED = 2**32 - 1
MAX_STEPS = 50
MAX_GUIDANCE = 20.0
DEFAULT_STEPS = 15  # the paper's schedule length; the shipped probes are fitted for it
DISPLAY_SIZE = 256  # pixels per side of images shown in the app
THUMB_SIZE = 96  # filmstrip tiles
MAX_MOVE = 32  # pixels (half the embedded model's image width)


def _finite(name: str, value, low: float, high: float) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(x) or not low <= x <= high:
        raise ValueError(f"{name} must be between {low:g} and {high:g}, got {value!r}")
    return x


@dataclass
class Run:
    """One generation in one session."""
    prompt: str
    seed: int
    num_inference_steps: int
    guidance_scale: float
    steps: list[StepState] = field(default_factory=list)  # grows while streaming
    image: np.ndarray | None = None  # (H, W, 3) uint8 final image, once done
    maps: dict = field(default_factory=dict)  # (step, layer) -> (depth (H, W), P(object) (H, W))
    labels: tuple | None = None  # labeler on the final image: (depth (H, W), P(object) (H, W))
    x0_labels: dict = field(default_factory=dict)  # step -> labeler on that step's x0
    edit: dict | None = None  # the last intervention's images and scores
    seconds: float = 0.0

    @property
    def done(self) -> bool:
        return self.image is not None


class ProbeDemo:
    """Wraps one loaded pipeline, its probe set and labeler, and answers the app's requests."""

    def __init__(self, pipe, name: str, probes: ProbeSet | None = None, labeler=None,
                 evaluation: dict | None = None, notice: str = ""):
        self.pipe = pipe
        self.name = name
        self.probes = probes
        self.labeler = labeler
        self.evaluation = evaluation
        self.notice = notice  # why probes or labeler are missing, shown in the app
        self.layers = self_attention_layers(pipe.unet)
        self.image_size = pipe.unet.config.sample_size * pipe.vae_scale_factor
        self._probe_timesteps = None
        self.site = probes.settings.site if probes is not None else "attn1"
        # one model, many sessions: hooks live on the shared UNet, so model runs take turns
        self._lock = threading.Lock()
        self.preset = None  # the model's ModelPreset when loaded by name (models.load_model)
        self.max_move = self.image_size // 2  # pixels
        # the paper's edit for other models (it works on SD); guided for the embedded one
        self.default_method = DEFAULT_METHOD if name.startswith("tiny-scenes") else "activation"

    @property
    def default_guidance(self) -> float:
        return self.preset.guidance_scale if self.preset is not None else DEFAULT_GUIDANCE

    # ------------------------------------------------------------------ construction
    @classmethod
    def embedded(cls, folder: str | Path = EMBEDDED_MODEL, probes: str | Path = EMBEDDED_PROBES,
                 labeler: str | Path = EMBEDDED_LABELER,
                 evaluation: str | Path = EMBEDDED_EVALUATION) -> "ProbeDemo":
        pipe = load_pipeline(folder)
        return cls.with_assets(pipe, "tiny-scenes (embedded)", "tiny-scenes", probes, labeler,
                               evaluation)

    @classmethod
    def with_assets(cls, pipe, name: str, model_name: str, probes, labeler,
                    evaluation) -> "ProbeDemo":
        """Load the probe set (refusing one made for another model), the labeler and the shipped
        evaluation where they exist; what is missing is explained in `notice`."""
        from .labelers import SceneLabeler
        from .probes import ProbeMismatchError
        from .train import expected_settings

        notes, probe_set, lab, ev = [], None, None, None
        try:
            probe_set = ProbeSet.load(probes, expect=expected_settings(pipe, model_name, probes))
        except (FileNotFoundError, ProbeMismatchError, KeyError, ValueError) as err:
            notes.append(f"No probe maps: {err}")
        try:
            lab = SceneLabeler.load(labeler) if labeler is not None else None
        except (FileNotFoundError, ValueError, RuntimeError) as err:
            notes.append(f"No labeler: {err}")
        if evaluation and Path(evaluation).is_file():
            ev = json.loads(Path(evaluation).read_text())
        return cls(pipe, name, probe_set, lab, ev, " ".join(notes))

    # ------------------------------------------------------------------ what the UI lists
    def vocabulary(self) -> list[str]:
        """The words a word-level model knows; empty for open-vocabulary (CLIP) tokenizers."""
        if not is_word_level(self.pipe.tokenizer):
            return []
        return sorted(w for w in self.pipe.tokenizer.get_vocab() if not w.startswith("<"))

    def example_prompts(self, n: int = 6) -> list[str]:
        """Captions of held-out scenes (seeds below the training range)."""
        return [render_scene(sample_scene(s), size=16).caption for s in range(20_000, 20_000 + n)]

    def layer_label(self, layer: str) -> str:
        """'up_blocks.1.attentions.2.transformer_blocks.0.attn1' -> 'up1.2 (8x8)'."""
        parts = layer.split(".")
        n_levels = len(self.pipe.unet.config.block_out_channels)
        latent = self.pipe.unet.config.sample_size
        if parts[0] == "mid_block":
            return f"mid ({latent // 2 ** (n_levels - 1)}x{latent // 2 ** (n_levels - 1)})"
        level = int(parts[1])
        res = latent // 2 ** (level if parts[0] == "down_blocks" else n_levels - 1 - level)
        return f"{parts[0].split('_')[0]}{level}.{parts[3]} ({res}x{res})"

    def best_layer(self) -> str:
        """The layer with the best held-out saliency Dice at the last step (shipped evaluation),
        else the first 8x8-or-coarser up-block layer."""
        if self.evaluation:
            best = self.evaluation.get("summary", {}).get("dice", {}).get("best_layer")
            if best in self.layers:
                return best
        ups = [l for l in self.layers if l.startswith("up_blocks")]
        return ups[0] if ups else self.layers[-1]

    def layer_choices(self) -> list[tuple[str, str]]:
        best = self.best_layer()
        return ([(f"best: {self.layer_label(best)}", "best")]
                + [(self.layer_label(l), l) for l in self.layers])

    def resolve_layer(self, layer: str | None) -> str:
        if layer in (None, "", "best"):
            return self.best_layer()
        if layer not in self.layers:
            raise ValueError(f"no self-attention layer {layer!r}; layers: best, "
                             + ", ".join(self.layers))
        return layer

    # ------------------------------------------------------------------ generation
    def check_request(self, prompt, seed, num_inference_steps, guidance_scale):
        if not isinstance(prompt, str):
            raise ValueError("prompt must be text")
        seed = int(_finite("seed", seed, 0, MAX_SEED))
        steps = int(_finite("steps", num_inference_steps, 1, MAX_STEPS))
        guidance = _finite("guidance", guidance_scale, 0.0, MAX_GUIDANCE)
        check_prompt(self.pipe.tokenizer, prompt)  # UnknownWordsError is a ValueError
        return prompt, seed, steps, guidance

    def generate(self, prompt: str, seed=0, num_inference_steps=25,
                 guidance_scale=DEFAULT_GUIDANCE) -> np.ndarray:
        """The final image only, upscaled to DISPLAY_SIZE, (S, S, 3) uint8."""
        prompt, seed, steps, guidance = self.check_request(prompt, seed, num_inference_steps,
                                                           guidance_scale)
        with self._lock:
            image = generate(self.pipe, prompt, seed=seed, num_inference_steps=steps,
                             guidance_scale=guidance)
        return to_size(image, DISPLAY_SIZE)

    def stream(self, prompt: str, seed=0, num_inference_steps=DEFAULT_STEPS,
               guidance_scale=DEFAULT_GUIDANCE) -> Iterator[Run]:
        """Yield the growing Run after every denoising step; the last one is done."""
        prompt, seed, steps, guidance = self.check_request(prompt, seed, num_inference_steps,
                                                           guidance_scale)
        run = Run(prompt, seed, steps, guidance)
        t0 = time.perf_counter()
        with self._lock:
            for state in denoise(self.pipe, prompt, num_inference_steps=steps,
                                 guidance_scale=guidance,
                                 generator=torch.Generator().manual_seed(seed),
                                 capture_layers=self.layers if self.probes else (),
                                 keep_resume=True, site=self.site):
                if any(a.is_cuda for a in state.activations.values()):
                    # a session's cache lives in RAM as float16, not in GPU memory
                    state.activations = {k: a.to("cpu", torch.float16)
                                         for k, a in state.activations.items()}
                run.steps.append(state)
                if state.index == steps - 1:
                    run.image = decode_latents(self.pipe, state.latents)
                    if self.labeler is not None:
                        d, s = self.labeler(run.image[None])
                        run.labels = (d[0], s[0])
                run.seconds = time.perf_counter() - t0
                yield run

    # ------------------------------------------------------------------ probe maps
    def probe_step(self, run: Run, step: int) -> int:
        """The probe set's step for a run's step: the same index on the trained schedule, else
        the trained step with the nearest timestep."""
        n = self.probes.settings.num_inference_steps
        if run.num_inference_steps == n:
            return step
        if self._probe_timesteps is None:
            import copy

            sched = copy.deepcopy(self.pipe.scheduler)
            sched.set_timesteps(n)
            self._probe_timesteps = np.array([int(t) for t in sched.timesteps])
        return int(np.argmin(np.abs(self._probe_timesteps - run.steps[step].timestep)))

    def maps(self, run: Run, step: int, layer: str) -> tuple[np.ndarray, np.ndarray] | None:
        """(depth, P(object)) at image size for one step and layer, cached on the run."""
        if self.probes is None or not 0 <= step < len(run.steps):
            return None
        key = (step, layer)
        if key not in run.maps:
            acts = run.steps[step].activations[layer]
            ps = self.probe_step(run, step)
            hw = tuple(run.steps[step].latents.shape[-2:])
            run.maps[key] = (self.probes.depth_map(ps, layer, acts, hw, self.image_size),
                             self.probes.saliency_map(ps, layer, acts, hw, self.image_size))
        return run.maps[key]

    def check_step(self, run: Run | None, step) -> int:
        if run is None or not run.steps:
            raise ValueError("generate an image first")
        return int(_finite("step", step, 0, len(run.steps) - 1))

    def view(self, run: Run, step, layer: str | None = "best", opacity: float = 0.6) -> dict:
        """Display images for one step: x0, depth (blended over x0 by opacity), saliency overlay,
        each DISPLAY_SIZE square; plus a caption."""
        step = self.check_step(run, step)
        layer = self.resolve_layer(layer)
        opacity = _finite("opacity", opacity, 0.0, 1.0)
        state = run.steps[step]
        x0 = state.x0_image if state.x0_image is not None else decode_latents(self.pipe,
                                                                              state.latents)
        out = {"x0": to_size(x0, DISPLAY_SIZE), "depth": None, "saliency": None,
               "caption": f"step {step + 1} of {run.num_inference_steps} "
                          f"(t = {state.timestep}) · layer {self.layer_label(layer)}"}
        m = self.maps(run, step, layer)
        if m is not None:
            depth, prob = m
            out["depth"] = to_size(blend(x0, colorize_depth(depth), max(opacity, 0.05)),
                                   DISPLAY_SIZE)
            out["saliency"] = to_size(overlay_mask(x0, prob, opacity), DISPLAY_SIZE)
        return out

    def filmstrip(self, run: Run, layer: str | None = "best") -> list[tuple[np.ndarray, str]]:
        """One square tile per step, 2 x THUMB_SIZE a side: x0 | depth over
        saliency overlay | depth with the object's outline (x0 alone without probes)."""
        layer = self.resolve_layer(layer)
        tiles = []
        for k, state in enumerate(run.steps):
            x0 = state.x0_image
            m = self.maps(run, k, layer)
            if m is None:
                tile = to_size(x0, 2 * THUMB_SIZE)
            else:
                depth = colorize_depth(m[0])
                tile = np.concatenate([
                    np.concatenate([to_size(x0, THUMB_SIZE), to_size(depth, THUMB_SIZE)], 1),
                    np.concatenate([to_size(overlay_mask(x0, m[1], 0.7), THUMB_SIZE),
                                    to_size(overlay_mask(depth, m[1], 0.0), THUMB_SIZE)], 1)], 0)
            tiles.append((tile, f"step {k + 1}"))
        return tiles

    # ------------------------------------------------------------------ emergence
    def emergence(self, run: Run, layer: str | None = "best") -> dict:
        """Per step: the probe's agreement with its own last-step reading (Dice, Pearson) and,
        with a labeler, the labeler on that step's x0 against its final labels."""
        layer = self.resolve_layer(layer)
        if not run.done or self.probes is None:
            return {}
        last = len(run.steps) - 1
        fd, fs = self.maps(run, last, layer)
        out = {"steps": list(range(1, len(run.steps) + 1)), "probe_dice": [], "probe_pearson": [],
               "labeler_dice": [], "labeler_pearson": []}
        for k in range(len(run.steps)):
            d, s = self.maps(run, k, layer)
            out["probe_dice"].append(dice(s > 0.5, fs > 0.5))
            out["probe_pearson"].append(pearson(d, fd))
            if self.labeler is not None and run.labels is not None:
                if k not in run.x0_labels:
                    ld, ls = self.labeler(run.steps[k].x0_image[None])
                    run.x0_labels[k] = (ld[0], ls[0])
                ld, ls = run.x0_labels[k]
                out["labeler_dice"].append(dice(ls > 0.5, run.labels[1] > 0.5))
                out["labeler_pearson"].append(pearson(ld, run.labels[0]))
        return out

    def emergence_plot(self, run: Run, layer: str | None = "best") -> np.ndarray | None:
        e = self.emergence(run, layer)
        if not e:
            return None
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5.2, 2.9))
        ax.plot(e["steps"], e["probe_dice"], "-o", ms=3, color="#d0259c",
                label="saliency probe vs its final mask (Dice)")
        ax.plot(e["steps"], e["probe_pearson"], "-o", ms=3, color="#e8762d",
                label="depth probe vs its final map (Pearson)")
        if e["labeler_dice"]:
            ax.plot(e["steps"], e["labeler_dice"], ":", color="#d0259c", lw=2,
                    label="labeler on x0 image vs final (Dice)")
            ax.plot(e["steps"], e["labeler_pearson"], ":", color="#e8762d", lw=2,
                    label="labeler on x0 image vs final (Pearson)")
        ax.set_xlabel("denoising step")
        ax.set_ylim(-0.05, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6.5, loc="lower right")
        ax.set_title(f"When does the scene appear? layer {self.layer_label(self.resolve_layer(layer))}",
                     fontsize=9)
        fig.tight_layout()
        return figure_to_array(fig)

    def heatmap(self) -> np.ndarray | None:
        """Layer x step heat maps of held-out probe scores from the shipped evaluation."""
        if not self.evaluation:
            return None
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        scores = self.evaluation["probes"]
        fig, axes = plt.subplots(1, 2, figsize=(8, 3.4))
        labels = [self.layer_label(l) if l in self.layers else l for l in scores["layers"]]
        for ax, metric, title in ((axes[0], "dice", "saliency probe Dice"),
                                  (axes[1], "pearson", "depth probe Pearson")):
            arr = np.array(scores[metric]).T  # (layers, steps)
            im = ax.imshow(arr, vmin=0, vmax=1, cmap="viridis", aspect="auto")
            ax.set_yticks(range(len(labels)), labels, fontsize=8)
            ax.set_xticks(range(0, arr.shape[1], 2), [str(s + 1) for s in scores["steps"][::2]],
                          fontsize=8)
            ax.set_xlabel("denoising step")
            ax.set_title(f"{title} ({scores['n']} held-out images)", fontsize=9)
            fig.colorbar(im, ax=ax, fraction=0.04)
        fig.tight_layout()
        return figure_to_array(fig)

    # ------------------------------------------------------------------ interventions
    def intervene(self, run: Run | None, move_x=0, move_y=0, scale=1.0, depth_push=0.0,
                  strength=None, first_step=0, last_step=3, method=None) -> Iterator[dict]:
        """Edit the scene of a finished run and re-run from the first edited step. Yields
        {"step": k, "x0": image} while streaming and, last, {"done": True, ...} with the before
        and after images, the target and achieved maps, and the scores."""
        if run is None or not run.done:
            raise ValueError("generate an image first, then steer it")
        if self.probes is None:
            raise ValueError("this model has no probe set, so it cannot be steered")
        method = method or self.default_method
        if method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
        dx = int(round(_finite("move x", move_x, -self.max_move, self.max_move)))
        dy = int(round(_finite("move y", move_y, -self.max_move, self.max_move)))
        factor = _finite("scale", scale, 0.25, 4.0)
        push = _finite("depth push", depth_push, -3.0, 3.0)
        defaults = METHOD_DEFAULTS[method]
        strength = defaults["strength"] if strength is None else _finite("strength", strength,
                                                                        0.0, 10.0)
        n = run.num_inference_steps
        first = int(_finite("first edited step", first_step, 0, n - 1))
        last = int(_finite("last edited step", last_step, first, n - 1))
        mask, depth = self._object(run)
        if not mask.any():
            raise ValueError("no salient object found in this image to steer")
        cut = 0.0  # share of the moved object that falls outside the image
        if dx or dy or factor != 1.0:
            scaled = scale_mask(mask, factor)
            target = move_mask(scaled.map, dx, dy)
            target.region = target.region | scaled.region
            cut = 1.0 - float(target.map.sum()) / max(float(scaled.map.sum()), 1.0)
            task = "saliency"
        elif push:
            target, task = push_depth(depth, mask, push), "depth"
        else:
            raise ValueError("set a move, a scale or a depth push first")
        edit = Edit(task, target.map, method, strength, range(first, last + 1),
                    layers=default_layers(method, self.layers),
                    iterations=defaults["iterations"], shift=(dx, dy))
        t0 = time.perf_counter()
        result = None
        with self._lock:
            for item in intervene_stream(self.pipe, self.probes, run.prompt, run.seed, edit, n,
                                         run.guidance_scale, original=run.steps, decode_x0=True):
                if isinstance(item, EditRun):
                    result = item
                else:
                    yield {"step": item.index, "x0": to_size(item.x0_image, DISPLAY_SIZE)}
        seconds = time.perf_counter() - t0
        scores = self._score(run.image, result.image, task, target, mask, push)
        if scores and task == "saliency":
            scores["target_cut"] = cut
        achieved = None
        if self.labeler is not None:
            ad, asal = self.labeler(result.image[None])
            achieved = asal[0] if task == "saliency" else ad[0]
        run.edit = {"task": task, "image": result.image, "target": target.map,
                    "achieved": achieved, "scores": scores, "seconds": seconds,
                    "settings": {"method": method, "strength": strength, "move_x": dx,
                                 "move_y": dy, "scale": factor, "depth_push": push,
                                 "steps": [first, last]},
                    "description": target.description}
        yield {"done": True, **self.edit_view(run)}

    def _object(self, run: Run) -> tuple[np.ndarray, np.ndarray]:
        """The object mask and depth map of the run's final image: the labeler's where there is
        one, else the best layer's probe readout at the last step."""
        if run.labels is not None:
            return run.labels[1] > 0.5, run.labels[0]
        d, s = self.maps(run, len(run.steps) - 1, self.best_layer())
        return s > 0.5, d

    def _score(self, before, after, task, target, mask, push) -> dict:
        if self.labeler is None:
            return {}
        if task == "saliency":
            s = score_move(self.labeler, before, after, target)
            ty, tx = centroid(target.map)
            oy, ox = centroid(mask)
            s["asked_x"], s["asked_y"] = tx - ox, ty - oy
            return s
        s = score_depth(self.labeler, before, after, mask, target.region)
        s["asked"] = push
        return s

    def edit_view(self, run: Run) -> dict:
        """Display images and a Markdown score card for the run's last intervention."""
        e = run.edit
        if e is None:
            raise ValueError("no intervention yet")
        if e["task"] == "saliency":
            target = overlay_mask(run.image, e["target"], 0.6)
            achieved = (overlay_mask(e["image"], e["achieved"], 0.6) if e["achieved"] is not None
                        else e["image"])
        else:
            target = colorize_depth(e["target"])
            achieved = colorize_depth(e["achieved"]) if e["achieved"] is not None else e["image"]
        return {"before": to_size(run.image, DISPLAY_SIZE), "after": to_size(e["image"], DISPLAY_SIZE),
                "target": to_size(target, DISPLAY_SIZE), "achieved": to_size(achieved, DISPLAY_SIZE),
                "score": score_card(e)}

    # ------------------------------------------------------------------ export
    def export(self, run: Run | None, folder: str | Path, layer: str | None = "best") -> list[Path]:
        """steps.gif (x0 | depth | saliency per step), final.png, depth.png, saliency.png,
        edited.png (if any), run.json (settings, seed, scores: enough to reproduce it)."""
        if run is None or not run.done:
            raise ValueError("generate an image first")
        layer = self.resolve_layer(layer)
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        frames = []
        for k, state in enumerate(run.steps):
            parts = [state.x0_image]
            m = self.maps(run, k, layer)
            if m is not None:
                parts += [colorize_depth(m[0]), overlay_mask(state.x0_image, m[1], 0.6)]
            frames.append(upscale(np.concatenate(parts, 1), 3))
        frames_to_gif(frames, folder / "steps.gif")
        paths.append(folder / "steps.gif")
        from PIL import Image

        Image.fromarray(run.image).save(folder / "final.png")
        paths.append(folder / "final.png")
        m = self.maps(run, len(run.steps) - 1, layer)
        if m is not None:
            Image.fromarray(colorize_depth(m[0])).save(folder / "depth.png")
            Image.fromarray(overlay_mask(run.image, m[1], 0.6)).save(folder / "saliency.png")
            paths += [folder / "depth.png", folder / "saliency.png"]
        record = {"model": self.name, "prompt": run.prompt, "seed": run.seed,
                  "num_inference_steps": run.num_inference_steps,
                  "guidance_scale": run.guidance_scale,
                  "scheduler": type(self.pipe.scheduler).__name__, "layer": layer,
                  "probe_settings": self.probes.settings.__dict__ if self.probes else None,
                  "seconds": run.seconds}
        if run.edit is not None:
            Image.fromarray(run.edit["image"]).save(folder / "edited.png")
            paths.append(folder / "edited.png")
            record["intervention"] = {"settings": run.edit["settings"],
                                      "scores": run.edit["scores"],
                                      "description": run.edit["description"]}
        (folder / "run.json").write_text(json.dumps(record, indent=2, default=float) + "\n")
        paths.append(folder / "run.json")
        return paths


def score_card(edit: dict) -> str:
    """Markdown summary of an intervention's scores."""
    s = edit["scores"]
    head = f"**{edit['description']}** via `{edit['settings']['method']}` in {edit['seconds']:.2f} s"
    if not s:
        return head + " (no labeler: not scored)"
    if edit["task"] == "saliency":
        ok = s["dice_after"] - s["dice_before"]
        return (f"{head}\n\n| | unedited | edited |\n|---|---|---|\n"
                f"| Dice with target | {s['dice_before']:.2f} | {s['dice_after']:.2f} "
                f"({ok:+.2f}) |\n"
                f"| object centre moved | - | x {s['shift_x']:+.1f} px, y {s['shift_y']:+.1f} px "
                f"(asked x {s['asked_x']:+.1f}, y {s['asked_y']:+.1f}) |\n"
                f"| object area | {s['area_before']} px | {s['area_after']} px |\n"
                f"| change outside the edit | - | {s['outside_change']:.3f} |\n\n"
                + (f"The move takes {100 * s['target_cut']:.0f}% of the object past the image "
                   "edge; the target keeps the part inside, so its centre moves less than "
                   "asked on the sliders.\n\n" if s.get("target_cut", 0.0) > 0.02 else "")
                + ("**The edit worked.**" if ok >= 0.1 else "**The edit did not take.**"))
    moved = s["depth_change"] * np.sign(s["asked"])
    return (f"{head}\n\n| | unedited | edited |\n|---|---|---|\n"
            f"| object depth (z units, + = near) | {s['depth_before']:+.2f} | "
            f"{s['depth_after']:+.2f} |\n"
            f"| change outside the object | - | {s['outside_change']:.3f} |\n\n"
            + ("**The object moved as asked.**" if moved > 0 else "**The object did not move as asked.**"))
