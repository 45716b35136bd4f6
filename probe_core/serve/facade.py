"""ProbeDemo: the plain-Python facade the app calls (and the tests drive). No gradio import here.

    >>> demo = ProbeDemo.embedded()
    >>> for run in demo.stream("a large red sphere on a gray plain floor", seed=0):
    ...     view = demo.view(run, run.steps[-1].index, "best")   # StepView of the newest step
    >>> for update in demo.intervene(run, SliderValues(move_x=16)): ...   # EditProgress..., EditView
    >>> paths = demo.export(run, "out/")                         # GIF, PNGs, JSON

The facade holds what a model serves (pipeline, probes, labeler, the lock its runs take turns
on) and the generation and its maps; the actions on a finished run live beside it: `editing`
(steering), `looks` (word maps, a pixel, an image, two runs compared), `export`.

Every public method validates its input and raises `ValueError` with a message fit to show a
user. A `Run` caches the probe maps computed from it, so scrubbing and switching layers never
recompute the model.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Iterator

import numpy as np

from .. import settings
from ..families import denoiser_of, family_of
from ..edits.edit_settings import DEFAULT_METHOD
from ..probing.cross_attention import word_tokens
from ..probing.denoise import decode_latents
from ..probing.generation import Generation
from ..probing.hooks import self_attention_layers
from ..probing.preview import DecodePreview, choose_preview
from ..probing.probes import ProbeSet
from ..probing.schedulers import DEFAULT as DEFAULT_SCHEDULER
from ..probing.schedulers import check_scheduler, make_scheduler
from ..probing.step_map import ProbeStepMap
from ..world.scenes import scene_captions
from ..world.tiny_ldm import check_prompt, is_word_level, load_pipeline
from . import figures, looks
from .editing import EditProgress, EditView, edit_run, scene_of
from .looks import CompareView, WordView
from .assets import load_assets, model_warning
from .export import export_run, run_record
from .image_probe_view import ImageProbe
from .inputs import (bounded, check_finished, check_generation, check_prompt_text, echo)
from .runs import Run, RunBudget, RunReaders, return_free_memory, stream_run
from .score_card import score_card
from .steering import SliderValues
from .zerogpu import keep_on_host

S = settings.DISPLAY_SIZE


RUN_BUDGET = RunBudget(settings.RUN_CACHE_MB * 2**20)  # all sessions' runs, across models


class ProbeDemo:
    """Wraps one loaded pipeline, its probe set and labeler, and answers the app's requests."""

    def __init__(self, pipe, name: str, probes: ProbeSet | None = None, labeler=None,
                 evaluation: dict | None = None, notice: str = "", scene_model: bool = False):
        self.pipe, self.name, self.probes, self.labeler = pipe, name, probes, labeler
        self.evaluation = evaluation
        self.notice = notice  # why probes or labeler are missing, shown in the app
        self.layers = self_attention_layers(denoiser_of(pipe))
        self.image_size = family_of(pipe).default_size(pipe)[0]
        self.site = probes.settings.site if probes is not None else "attn1"
        self.probe_steps = (ProbeStepMap(pipe.scheduler, probes.settings.num_inference_steps,
                                         pipe)
                            if probes is not None else None)
        # one model, many sessions: hooks live on the shared UNet, so model runs take turns
        self.lock = threading.Lock()
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
        return figures.layer_label(denoiser_of(self.pipe).config, layer)

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
        with self.lock:
            generation = Generation(*request, negative_prompt or None, scheduler)
            readers = RunReaders(self.layers if self.probes else (), self.site, self.labeler,
                                 self.probes, self.probe_steps, self.preview, bool(word_attention))
            for run in stream_run(self.pipe, generation, readers):
                if len(run.steps) == 1:
                    run.session = session
                    self.budget.use(run)
                if run.done:
                    keep_on_host(run)
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

    def x0_labels(self, run: Run) -> list[tuple[np.ndarray, np.ndarray]]:
        """The labeler on every step's x0 (full decode), each computed once per run."""
        return [run.x0_labels_at(k, self.labeler, self.x0_image(run, k))
                for k in range(len(run.steps))]

    def emergence(self, run: Run, layer: str | None = "best") -> figures.Emergence | None:
        layer = self.resolve_layer(layer)
        if not run.done or self.probes is None:
            return None
        x0_labels = None
        if self.labeler is not None and run.labels is not None:
            x0_labels = self.x0_labels(run)
        return figures.emergence_scores(self._all_maps(run, layer), x0_labels, run.labels)

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
        """Where `word` attends at 0-based `step` (None: every step), beside the chosen
        layer's saliency probe (`looks.word_view`)."""
        return looks.word_view(self, run, word, step, layer)

    def inspect_pixel(self, run: Run | None, x, y, layer: str | None = "best") -> np.ndarray:
        """One pixel of the image through the run, every step and layer (`looks.inspect_pixel`)."""
        return looks.inspect_pixel(self, run, x, y, layer)

    def probe_image(self, image: np.ndarray | None = None, prompt: str = "", seed=0,
                    render_seed=None, layer: str | None = "best") -> ImageProbe:
        """The probes on a given image or a held-out render (`looks.probe_image`)."""
        return looks.probe_image(self, image, prompt, seed, render_seed, layer)

    # ------------------------------------------------------------------ interventions
    def intervene(self, run: Run | None, sliders: SliderValues = SliderValues()
                  ) -> Iterator[EditProgress | EditView]:
        """Edit the scene of a finished run and re-run from the first edited step: yields an
        EditProgress per re-run step, then the EditView. Besides the sliders (move, scale,
        depth push), `drawn` names a drawn target: "paint" (the object where `painted`, an
        (H, W) mask or (H, W, 4) brush layer at any size, is set), "flip" (the object mirrored)
        or "swap" (near and far exchanged); `shift_x, shift_y` shift the whole depth map (px).
        Everything asked is one edit; its card scores every part. The edited steps (0-based)
        default to the method's, within the run."""
        for update in edit_run(self, run, sliders):
            if isinstance(update, EditProgress):
                yield update
        yield self.edit_view(run)

    # ------------------------------------------------------------------ compare
    def compare(self, run_a: Run | None, run_b: Run | None, step, layer_a: str | None = "best",
                layer_b: str | None = "best") -> CompareView:
        """Two runs side by side at one step (`looks.compare`)."""
        return looks.compare(self, run_a, run_b, step, layer_a, layer_b)

    def scene(self, run: Run):
        """The labelled scene of a run's final image (`editing.scene_of`): what an edit
        plans from."""
        return scene_of(self, run)

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
