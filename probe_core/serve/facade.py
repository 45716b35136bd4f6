"""ProbeDemo: the plain-Python facade the app calls (and the tests drive). No gradio import here.

    >>> demo = ProbeDemo.embedded()
    >>> for run in demo.stream("a large red sphere on a gray plain floor", seed=0):
    ...     view = demo.view(run, run.steps[-1].index, "best")   # StepView of the newest step
    >>> for update in demo.intervene(run, move_x=16): ...        # EditProgress..., EditView
    >>> paths = demo.export(run, "out/")                         # GIF, PNGs, JSON

Every public method validates its input and raises `ValueError` with a message fit to show a
user. A `Run` caches the probe maps computed from it, so scrubbing and switching layers never
recompute the model.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from .. import settings
from ..edits.methods import DEFAULT_METHOD, EditRun, defaults_of, intervene_stream
from ..metrics import dice, pearson
from ..probing.cross_attention import word_maps, word_tokens
from ..probing.denoise import decode_latents
from ..probing.hooks import self_attention_layers
from ..probing.image_probe import probe_image
from ..probing.preview import DecodePreview, choose_preview
from ..probing.probes import ProbeSet
from ..probing.schedulers import DEFAULT as DEFAULT_SCHEDULER
from ..probing.schedulers import check_scheduler, make_scheduler
from ..probing.step_map import ProbeStepMap
from ..viz import to_size
from ..world.labeler import inverse_depth_target
from ..world.scenes import render_scene, sample_scene, scene_captions
from ..world.tiny_ldm import check_prompt, is_word_level, load_pipeline
from . import figures
from .assets import load_assets, model_warning
from .export import export_run, run_record
from .image_probe_view import ImageProbe, check_image, image_probe_view
from .inputs import (bounded, check_finished, check_generation, check_prompt_text, echo,
                     whole)
from .runs import Run, RunBudget, return_free_memory, step_tokens, stream_run
from .score_card import score_card
from .steering import (EditOutcome, EditProgress, EditView, build_target, check_steer, make_edit,
                       object_of, score_edit)

S = settings.DISPLAY_SIZE


@dataclass
class CompareView:
    """Two runs at one step as displayed (figures.compare_grid) and the numbers."""
    image: np.ndarray
    text: str


@dataclass
class WordView:
    """A word's attention as displayed: over the image, the compare panels (None without
    probes) and the agreement numbers."""
    image: np.ndarray  # (S + band, S, 3) uint8
    compare: np.ndarray | None  # (S + band, 3 S + gaps, 3) uint8
    text: str
RUN_BUDGET = RunBudget(settings.RUN_CACHE_MB * 2**20)  # all sessions' runs, across models


class ProbeDemo:
    """Wraps one loaded pipeline, its probe set and labeler, and answers the app's requests."""

    def __init__(self, pipe, name: str, probes: ProbeSet | None = None, labeler=None,
                 evaluation: dict | None = None, notice: str = "", scene_model: bool = False):
        self.pipe, self.name, self.probes, self.labeler = pipe, name, probes, labeler
        self.evaluation = evaluation
        self.notice = notice  # why probes or labeler are missing, shown in the app
        self.layers = self_attention_layers(pipe.unet)
        self.image_size = pipe.unet.config.sample_size * pipe.vae_scale_factor
        self.site = probes.settings.site if probes is not None else "attn1"
        self.probe_steps = (ProbeStepMap(pipe.scheduler, probes.settings.num_inference_steps)
                            if probes is not None else None)
        # one model, many sessions: hooks live on the shared UNet, so model runs take turns
        self._lock = threading.Lock()
        self.preset = None  # the model's ModelPreset when loaded by name (models.load_model)
        self.max_move = self.image_size // 2  # pixels
        self.max_steps = settings.MAX_STEPS  # a deployment may lower it
        self.budget = RUN_BUDGET
        self.preview = choose_preview(pipe)  # each step's x0 while a run streams
        # guided for our scene models; the paper's edit (it works on SD) for others
        self.default_method = DEFAULT_METHOD if scene_model else "activation"

    @property
    def default_guidance(self) -> float:
        return self.preset.guidance_scale if self.preset is not None else settings.DEFAULT_GUIDANCE

    @classmethod
    def embedded(cls, folder=settings.EMBEDDED_MODEL, probes=settings.EMBEDDED_PROBES,
                 labeler=settings.EMBEDDED_LABELER,
                 evaluation=settings.EMBEDDED_EVALUATION) -> "ProbeDemo":
        pipe = load_pipeline(folder)
        demo = cls.with_assets(pipe, "tiny-scenes (embedded)", settings.EMBEDDED_NAME, probes,
                               labeler, evaluation, scene_model=True)
        demo.notice = " ".join(filter(None, [model_warning(pipe, settings.EMBEDDED_FINGERPRINT),
                                             demo.notice]))
        return demo

    @classmethod
    def with_assets(cls, pipe, name: str, model_name: str, probes, labeler, evaluation,
                    scene_model: bool = False) -> "ProbeDemo":
        """Load the probe set (refusing one made for another model), the labeler and the shipped
        evaluation where they exist; what is missing is explained in `notice`."""
        probe_set, lab, ev, notice = load_assets(pipe, model_name, probes, labeler, evaluation)
        return cls(pipe, name, probe_set, lab, ev, notice, scene_model)

    # ------------------------------------------------------------------ what the UI lists
    def vocabulary(self) -> list[str]:
        """The words a word-level model knows; empty for open-vocabulary (CLIP) tokenizers."""
        if not is_word_level(self.pipe.tokenizer):
            return []
        return sorted(w for w in self.pipe.tokenizer.get_vocab() if not w.startswith("<"))

    def example_prompts(self, n: int = 6) -> list[str]:
        """Captions of held-out scenes."""
        return scene_captions(settings.SEEDS.examples[:n])

    def layer_label(self, layer: str) -> str:
        return figures.layer_label(self.pipe.unet.config, layer)

    def best_layer(self) -> str:
        """The layer with the best held-out saliency Dice at the last step (shipped evaluation),
        else the first up-block layer."""
        if self.evaluation:
            best = self.evaluation.get("summary", {}).get("dice", {}).get("best_layer")
            if best in self.layers:
                return best
        ups = [l for l in self.layers if l.startswith("up_blocks")]
        return ups[0] if ups else self.layers[-1]

    def layer_choices(self) -> list[tuple[str, str]]:
        """(label, value) pairs for the layer picker; labels carry each layer's held-out scores
        at the last step (saliency Dice, depth Pearson) when the shipped evaluation has them."""
        scores = {}
        probes = (self.evaluation or {}).get("probes") or {}
        for j, layer in enumerate(probes.get("layers", [])):
            try:
                scores[layer] = (f" · Dice {probes['dice'][-1][j]:.2f}, "
                                 f"depth r {probes['pearson'][-1][j]:.2f}")
            except (KeyError, IndexError, TypeError, ValueError):
                continue
        best = self.best_layer()
        return ([(f"best: {self.layer_label(best)}{scores.get(best, '')}", "best")]
                + [(self.layer_label(l) + scores.get(l, ""), l) for l in self.layers])

    def resolve_layer(self, layer: str | None) -> str:
        if layer in (None, "", "best"):
            return self.best_layer()
        if layer not in self.layers:
            raise ValueError(f"no self-attention layer {echo(layer)}; layers: best, "
                             + ", ".join(self.layers))
        return layer

    # ------------------------------------------------------------------ generation and maps
    def stream(self, prompt: str, seed=0, num_inference_steps=settings.DEFAULT_STEPS,
               guidance_scale=settings.DEFAULT_GUIDANCE, session: str | None = None,
               negative_prompt: str = "", scheduler: str = DEFAULT_SCHEDULER,
               word_attention: bool = False) -> Iterator[Run]:
        """Yield the growing Run after every denoising step; the last one is done. `session`
        names the app session that asked (its runs are released when it closes).
        `negative_prompt` (used under guidance) and `scheduler` (a `SCHEDULERS` label or
        "default", the model's own) are the sampling controls; a run on a schedule other than
        the probe set's says so in `run.schedule_note`. With `word_attention` every step's
        cross-attention over the prompt's tokens is kept too (`word_view`)."""
        request = check_generation(self.pipe.tokenizer, prompt, seed, num_inference_steps,
                                   guidance_scale, self.max_steps)
        negative_prompt = check_prompt_text(negative_prompt or "", allow_empty=True,
                                            name="negative prompt")
        check_prompt(self.pipe.tokenizer, negative_prompt)
        scheduler = check_scheduler(scheduler)
        with self._lock:
            for run in stream_run(self.pipe, *request, self.layers if self.probes else (),
                                  self.site, self.labeler, self.probes, self.probe_steps,
                                  self.preview, negative_prompt, scheduler,
                                  bool(word_attention)):
                if len(run.steps) == 1:
                    run.session = session
                    self.budget.use(run)
                yield run
        self.budget.use(run)  # its full size counts from here
        return_free_memory()

    def maps(self, run: Run, step: int, layer: str) -> tuple[np.ndarray, np.ndarray] | None:
        """(depth, P(object)) at image size for one step and layer, made on demand from the
        run's kept probe outputs (read by the probed step nearest the run's step in time) and
        cached on the run."""
        if self.probes is None or not 0 <= step < len(run.tokens):
            return None
        if (step, layer) not in run.maps:
            tokens = run.tokens[step].get(layer)
            if tokens is None:
                return None
            hw = tuple(run.steps[step].latents.shape[-2:])
            run.maps[(step, layer)] = self.probes.maps_from_tokens(tokens, hw, self.image_size)
        return run.maps[(step, layer)]

    def x0_image(self, run: Run, step: int) -> np.ndarray:
        """Step `step`'s x0 prediction at full quality: the preview when it is the full decode,
        else decoded now (once) from the kept x0 latents."""
        state = run.steps[step]
        if isinstance(self.preview, DecodePreview) and state.x0_image is not None:
            return state.x0_image
        if step not in run.x0_full:
            run.x0_full[step] = decode_latents(self.pipe, state.x0_latents
                                               if state.x0_latents is not None else state.latents)
        return run.x0_full[step]

    def check_step(self, run: Run | None, step) -> int:
        if run is None or not run.steps:
            raise ValueError("generate an image first")
        return int(bounded("step", step, 0, len(run.steps) - 1))

    def view(self, run: Run, step, layer: str | None = "best",
             opacity: float = 0.6) -> figures.StepView:
        """x0, depth (in depth colours, whatever the opacity) and the saliency overlay (over x0
        by opacity) for one step."""
        step = self.check_step(run, step)
        layer = self.resolve_layer(layer)
        opacity = bounded("opacity", opacity, 0.0, 1.0)
        state = run.steps[step]
        # while streaming: the step's preview; afterwards (scrubbing): the full decode
        x0 = (self.x0_image(run, step) if run.done or state.x0_image is None
              else state.x0_image)
        caption = (f"step {step + 1} of {run.num_inference_steps} (t = {state.timestep}) · "
                   f"layer {self.layer_label(layer)}"
                   + ("" if run.done else f" · x0 shown by {self.preview.name}")
                   + (f" · {run.scheduler} sampler: probes of the nearest probed timestep"
                      if run.schedule_note else ""))
        return figures.step_view(x0, self.maps(run, step, layer), opacity, caption)

    def _all_maps(self, run: Run, layer: str) -> list:
        return [self.maps(run, k, layer) for k in range(len(run.steps))]

    def filmstrip(self, run: Run, layer: str | None = "best") -> list[tuple[np.ndarray, str]]:
        layer = self.resolve_layer(layer)
        return figures.filmstrip_tiles([s.x0_image for s in run.steps], self._all_maps(run, layer))

    def _x0_labels(self, run: Run) -> list[tuple[np.ndarray, np.ndarray]]:
        """The labeler on every step's x0 (full decode), each computed once per run."""
        return [run.x0_labels_at(k, self.labeler, self.x0_image(run, k))
                for k in range(len(run.steps))]

    def emergence(self, run: Run, layer: str | None = "best") -> figures.Emergence | None:
        layer = self.resolve_layer(layer)
        if not run.done or self.probes is None:
            return None
        x0_labels = None
        if self.labeler is not None and run.labels is not None:
            x0_labels = self._x0_labels(run)
        return figures.emergence_scores(self._all_maps(run, layer), x0_labels, run.labels)

    def emergence_plot(self, run: Run, layer: str | None = "best",
                       step: int | None = None) -> np.ndarray | None:
        """The emergence figure of a finished run; `step` (0-based), the step shown, marked."""
        e = self.emergence(run, layer)
        if step is not None:
            step = self.check_step(run, step) + 1
        return None if e is None else figures.emergence_plot(
            e, self.layer_label(self.resolve_layer(layer)), step)

    def heatmap(self) -> np.ndarray | None:
        """Layer x step heat maps of held-out probe scores from the shipped evaluation."""
        if not self.evaluation:
            return None
        scores = self.evaluation["probes"]
        return figures.heatmap(scores, [self.layer_label(l) if l in self.layers else l
                                        for l in scores["layers"]])

    # ------------------------------------------------------------------ word attention
    def words(self, run: Run | None) -> list[str]:
        """The prompt's words, each once in order, when the run kept word attention."""
        if run is None or not run.word_attention:
            return []
        return list(dict.fromkeys(w for w, _ in word_tokens(self.pipe.tokenizer, run.prompt)))

    def word_view(self, run: Run | None, word, step=None,
                  layer: str | None = "best") -> WordView:
        """Where `word` attends: its cross-attention map (all layers, heads and its tokens) at
        0-based `step`, or averaged over every step when `step` is None, over that step's x0
        (the final image for all steps); beside it, the chosen layer's saliency probe at the
        same step (the last for all steps) and their agreement (Pearson r, Dice of the parts
        above 0.5), and the agreement with the labeler's object on the final image."""
        if run is None or not run.steps:
            raise ValueError("generate an image first")
        if not run.word_attention:
            raise ValueError("this run kept no word attention: tick 'Word attention maps' and "
                             "generate again")
        tokens = word_tokens(self.pipe.tokenizer, run.prompt)
        positions = [(w, p) for w, p in tokens if w == word] if isinstance(word, str) else []
        if not positions:
            raise ValueError(f"no word {echo(word)} in this run's prompt; its words: "
                             + ", ".join(dict.fromkeys(w for w, _ in tokens)))
        layer = self.resolve_layer(layer)
        n = len(run.word_attention)
        if step in (None, "", "all"):
            stack = torch.stack([a.float() for a in run.word_attention])
            k, when, image = n - 1, f"mean of {n} steps", run.image if run.done else None
        else:
            k = int(bounded("step", step, 0, n - 1))
            stack, when, image = run.word_attention[k].float(), f"step {k + 1}", None
        image = image if image is not None else self.x0_image(run, k)
        heat = word_maps(stack, positions, self.image_size)[word]
        maps = self.maps(run, k, layer)
        text = f"**'{word}'** attention, {when}."
        compare = None
        if maps is not None:
            prob = maps[1]
            compare = figures.word_compare(image, prob, heat, word)
            text += (f" Against the saliency probe ({self.layer_label(layer)}, step {k + 1}): "
                     f"Pearson r {pearson(heat, prob):+.2f}, Dice of the parts "
                     f"above 0.5 {dice(heat > 0.5, prob > 0.5):.2f}.")
        if run.labels is not None:
            obj = run.labels[1] > 0.5
            text += (f" Against the labeler's object on the final image: Pearson r "
                     f"{pearson(heat, obj):+.2f}, Dice {dice(heat > 0.5, obj):.2f}.")
        return WordView(figures.word_view(image, heat, word, when), compare, text)

    def inspect_pixel(self, run: Run | None, x, y, layer: str | None = "best") -> np.ndarray:
        """One pixel of the image through the run: its probe depth and P(object) at every step
        for the chosen layer (and the labeler's on each step's x0, when there is a labeler) and
        for every layer as layer x step heat maps. (x, y) in pixels of the model's image."""
        if run is None or not run.tokens:
            raise ValueError("generate an image first" if self.probes is not None or run is None
                             else "this model has no probe set to inspect")
        layer = self.resolve_layer(layer)
        x = int(bounded("x", x, 0, self.image_size - 1))
        y = int(bounded("y", y, 0, self.image_size - 1))
        layers = [l for l in self.layers if all(t.get(l) is not None for t in run.tokens)]
        if layer not in layers:
            raise ValueError(f"no probe readings of layer {echo(layer)} in this run")
        hw = tuple(run.steps[0].latents.shape[-2:])
        values = np.array([[self.probes.pixel_from_tokens(t.get(l), hw, self.image_size, y, x)
                            for l in layers] for t in run.tokens])  # (steps, layers, 2)
        labeled = None
        if self.labeler is not None and run.done:
            labels = self._x0_labels(run)
            labeled = ([float(d[y, x]) for d, _ in labels], [float(s[y, x]) for _, s in labels])
        return figures.pixel_plot(values[..., 0], values[..., 1],
                                  [self.layer_label(l) for l in layers], layers.index(layer),
                                  labeled, (x, y))

    def probe_image(self, image: np.ndarray | None = None, prompt: str = "", seed=0,
                    render_seed=None, layer: str | None = "best") -> ImageProbe:
        """The probes on a given image: `image` (H, W, 3) uint8, resized to the model's size, or
        the held-out render of `render_seed` (with its exact depth and mask; its caption is the
        default prompt). The image is noised to each step's level (fixed `seed`) and the UNet
        run once per step with `prompt` (may be empty); the chosen layer's maps at every step
        are scored against the labeler's labels of the image and, for a render, the truth."""
        if self.probes is None:
            raise ValueError("this model has no probe set to read an image with")
        layer = self.resolve_layer(layer)
        seed = whole("seed", seed, 0, settings.MAX_SEED)
        truth = None
        if render_seed not in (None, ""):
            scene = render_scene(sample_scene(whole("render seed", render_seed, 0,
                                                    settings.MAX_SEED)), self.image_size)
            image, truth = scene.image, (inverse_depth_target(scene.depth), scene.mask)
            prompt = prompt or scene.caption
        image = check_image(image, self.image_size)
        check_prompt(self.pipe.tokenizer, check_prompt_text(prompt, allow_empty=True))
        s = self.probes.settings
        labels = None
        if self.labeler is not None:
            d, p = self.labeler(image[None])
            labels = (d[0], p[0] > 0.5)
        steps = []
        t0 = time.perf_counter()
        with self._lock:
            for state in probe_image(self.pipe, image, prompt, s.num_inference_steps,
                                     s.guidance_scale, seed, [layer], self.site):
                tokens = self.probes.token_outputs(state.index, state.activations)[layer]
                hw = tuple(state.latents.shape[-2:])
                steps.append(self.probes.maps_from_tokens(tokens, hw, self.image_size))
        return image_probe_view(image, steps, labels, truth, prompt,
                                self.layer_label(layer), time.perf_counter() - t0)

    # ------------------------------------------------------------------ interventions
    def intervene(self, run: Run | None, move_x=0, move_y=0, scale=1.0, depth_push=0.0,
                  strength=None, first_step=None, last_step=None, method=None, drawn="none",
                  painted=None, shift_x=0, shift_y=0) -> Iterator[EditProgress | EditView]:
        """Edit the scene of a finished run and re-run from the first edited step: yields an
        EditProgress per re-run step, then the EditView. Besides the sliders (move, scale,
        depth push), `drawn` names a drawn target: "paint" (the object where `painted`, an
        (H, W) mask or (H, W, 4) brush layer at any size, is set), "flip" (the object mirrored)
        or "swap" (near and far exchanged); `shift_x, shift_y` shift the whole depth map (px).
        Everything asked is one edit; its card scores every part. The edited steps (0-based)
        default to the method's, within the run."""
        check_finished(run, "steer it")
        if self.probes is None:
            raise ValueError("this model has no probe set, so it cannot be steered")
        chosen = method or self.default_method
        default = defaults_of(chosen)
        if default is not None:
            first, last = default.steps_within(run.num_inference_steps)
            last_step = last if last_step is None else last_step
            if first_step is None:
                first_step = first
                if isinstance(last_step, (int, float)) and last_step == last_step:
                    first_step = max(0, min(first_step, int(last_step)))
        request = check_steer(move_x, move_y, scale, depth_push, strength, first_step, last_step,
                              chosen, self.max_move,
                              run.num_inference_steps, drawn, painted, shift_x, shift_y,
                              self.image_size)
        mask, depth = self._object(run)
        parts = build_target(mask, depth, request)
        edit = make_edit(request, parts, self.layers, mask)
        t0 = time.perf_counter()
        tokens = []  # the re-run steps' probe outputs, for the compare view
        with self._lock:
            for item in intervene_stream(self.pipe, self.probes, run.prompt, run.seed, edit,
                                         run.num_inference_steps, run.guidance_scale,
                                         original=None if run.released else run.steps,
                                         capture_layers=self.layers, decode_x0=True,
                                         preview=self.preview,
                                         scheduler=make_scheduler(self.pipe, run.scheduler),
                                         negative_prompt=run.negative_prompt or None):
                if isinstance(item, EditRun):
                    result = item
                else:
                    tokens.append(step_tokens(self.probes, self.probe_steps, item))
                    item.activations = {}
                    yield EditProgress(item.index, to_size(item.x0_image, S))
        seconds = time.perf_counter() - t0
        outcomes = score_edit(self.labeler, run.image, result.image, parts, mask, depth)
        edited = Run(run.prompt, run.seed, run.num_inference_steps, run.guidance_scale,
                     run.negative_prompt, run.scheduler, run.schedule_note,
                     steps=result.steps, image=result.image,
                     tokens=run.tokens[:len(result.steps) - len(tokens)] + tokens)
        run.edit = EditOutcome(result.image, outcomes, seconds, request, result.probe_steps,
                               edited, result.carried)
        return_free_memory()
        yield self.edit_view(run)

    # ------------------------------------------------------------------ compare
    def compare(self, run_a: Run | None, run_b: Run | None, step, layer_a: str | None = "best",
                layer_b: str | None = "best") -> CompareView:
        """Two runs side by side at one step (1-based over A's steps; B at the same point of its
        own schedule): image, depth and object for each, and B - A. Numbers: mean |B - A| of
        depth and the Dice of the two objects (P > 0.5)."""
        if run_a is None or not run_a.steps or run_b is None or not run_b.steps:
            raise ValueError("keep a run as A (or edit one), then generate B to compare")
        na, nb = len(run_a.steps), len(run_b.steps)
        ka = int(bounded("step", step, 1, na)) - 1
        kb = round(ka * (nb - 1) / max(na - 1, 1))
        la, lb = self.resolve_layer(layer_a), self.resolve_layer(layer_b)
        maps = (self.maps(run_a, ka, la), self.maps(run_b, kb, lb))
        images = (self.x0_image(run_a, ka), self.x0_image(run_b, kb))
        titles = tuple(f"step {k + 1}/{n}, {self.layer_label(l)}"
                       for k, n, l in ((ka, na, la), (kb, nb, lb)))
        edited = run_a.edit is not None and run_a.edit.run is run_b
        text = (f"A: *{run_a.prompt}* (seed {run_a.seed}), step {ka + 1} of {na}, layer "
                f"{self.layer_label(la)} · B: *{run_b.prompt}* (seed {run_b.seed})"
                f"{', A after its edit' if edited else ''}, step {kb + 1} of {nb}, layer "
                f"{self.layer_label(lb)}.")
        if maps[0] is not None and maps[1] is not None:
            (da, pa), (db, pb) = maps
            text += (f" Mean |B - A| depth {np.abs(db - da).mean():.2f} z-units; Dice of the "
                     f"two objects {dice(pa > 0.5, pb > 0.5):.2f}.")
        return CompareView(figures.compare_grid(images, maps, titles), text)

    def _object(self, run: Run) -> tuple[np.ndarray, np.ndarray]:
        """(object mask, depth) of the final image: the labeler's, else the best probes'."""
        last = None if run.labels is not None else self.maps(run, len(run.steps) - 1,
                                                              self.best_layer())
        return object_of(run, last)

    def edit_view(self, run: Run) -> EditView:
        """Display images and the score card of the run's last intervention."""
        e = run.edit
        if e is None:
            raise ValueError("no intervention yet")
        return EditView(*figures.edit_images(run.image, e), score_card(e))

    # ------------------------------------------------------------------ export
    def export(self, run: Run | None, folder: str | Path, layer: str | None = "best") -> list[Path]:
        """steps.gif, final/depth/saliency/edited PNGs and run.json (enough to reproduce it)."""
        check_finished(run, "export it")
        layer = self.resolve_layer(layer)
        sampler = type(make_scheduler(self.pipe, run.scheduler)).__name__
        record = run_record(run, self.name, sampler, layer,
                            self.probes.settings if self.probes else None)
        return export_run(run, folder, self._all_maps(run, layer), record,
                          [self.x0_image(run, k) for k in range(len(run.steps))])
