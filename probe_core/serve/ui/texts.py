"""The page's words, styles and small scripts: the pitch, the glossary, the About tab, legends
and the progress bar."""

from __future__ import annotations

import html

import numpy as np

PITCH = ("**scene-probe** · watch a diffusion model build a 3D scene step by step: linear probes "
         "read a **depth map** and the **salient object** out of its activations at every step "
         "(Chen, Viégas & Wattenberg, 2023).")

GLOSSARY = {
    "denoising step": "the model starts from pure noise and removes a little of it at each step;"
                      " step 1 is the noisiest, the last step gives the final image.",
    "x0 (predicted image)": "at every step the model guesses the finished image; that guess, "
                            "decoded, is the image shown for the step.",
    "t (timestep)": "the noise level the model is told at a step: high early, 0 at the end.",
    "probe": "a tiny linear model trained to read one thing (depth, or 'object or not') from "
             "the model's internal activations. If a linear probe can read it, the model "
             "represents it.",
    "activations": "the numbers a layer of the model computes inside; here the output of a "
                   "self-attention layer, one vector per image patch.",
    "layer": "which self-attention layer is read (a UNet's down, mid or up blocks; a "
             "transformer's blocks, first to last); 'best' is the layer with the best held-out "
             "scores.",
    "depth probe": "reads, per pixel, how near the surface is (bright = near, dark = far).",
    "saliency probe": "reads, per pixel, the probability P(object) that it belongs to the main "
                      "object rather than floor or sky (magenta = object).",
    "labeler": "a separate image model that labels depth and the object on a finished image; "
               "its labels trained the probes, and it scores the runs here.",
    "Dice": "overlap of two masks: 1 = identical, 0 = no overlap.",
    "Pearson r": "correlation of two maps: 1 = same pattern, 0 = unrelated.",
    "z-units": "inverse depth standardised per image (0 = the image's mean, +1 = one "
               "standard deviation nearer than that).",
    "guidance scale": "how strongly the image follows the prompt (classifier-free guidance).",
    "sampler (scheduler)": "the rule that turns the model's noise estimate into the next step's "
                           "image; the model's own is the one its probes were fitted on.",
    "intervention (edit)": "changing the activations or latent during the run so that the "
                           "probes read a different scene, then letting the model finish: if "
                           "the image follows, the representation is used, not just present.",
    "emergence": "how early a step's probe reading already agrees with the final one.",
}

ABOUT = """### What this shows
A diffusion model makes an image by removing noise over a number of steps. The paper *Beyond
Surface Statistics* (Chen, Viégas & Wattenberg, 2023) asked whether such a model, trained only
on 2D images, keeps an internal picture of the **3D scene**: how far each surface is, and which
pixels belong to the main object. They trained *linear probes* on the activations of Stable
Diffusion's self-attention layers and found both, very early in the run, long before the image
itself shows them. Then they edited the activations along the probes' directions and the
generated scene changed accordingly.

scene-probe lets you watch this happen live (**Watch**), edit the scene through the probes
(**Steer**), inspect single pixels, layers and words (**Look closer**), probe an image of your
own (**Your image**) and compare two runs (**Compare**).

The default model is a tiny text-to-image diffusion model trained by this project on rendered
3D scenes (floor, sky, one to three spheres, boxes, cylinders), for which the exact depth and
object masks are known; it runs on a laptop CPU in about a second. Stable Diffusion v1.x runs
through the same code where the server has it.

Paper: [arxiv.org/abs/2306.05720](https://arxiv.org/abs/2306.05720) ·
Project code and measurements: see the repository's README and docs/.
"""


def glossary_markdown() -> str:
    return "### Glossary\n" + "\n".join(f"- **{term}**: {text}"
                                         for term, text in GLOSSARY.items())


def _magma_stops(n: int = 7) -> str:
    from matplotlib import colormaps

    rgba = colormaps["magma"](np.linspace(0, 1, n))
    return ", ".join(f"rgb({int(r * 255)},{int(g * 255)},{int(b * 255)})"
                     for r, g, b, _ in rgba)


def legends_html() -> str:
    """The colour keys of the depth and saliency views, as crisp HTML."""
    return (
        '<div class="sp-legends">'
        '<span class="sp-key"><b>Depth</b> far '
        f'<span class="sp-bar" style="background:linear-gradient(90deg,{_magma_stops()})">'
        '</span> near</span>'
        '<span class="sp-key"><b>Saliency</b> '
        '<span class="sp-swatch" style="background:#ff00ff"></span> object (P &gt; 0.5) '
        '<span class="sp-swatch sp-plain"></span> not object</span></div>')


def progress_html(done: int, total: int, seconds: float, what: str = "step") -> str:
    """A progress bar with 'step k of N' and an estimate of the time left."""
    total = max(int(total), 1)
    done = min(max(int(done), 0), total)
    left = seconds / done * (total - done) if done else 0.0
    eta = ("done" if done >= total else
           f"about {left:.1f} s left" if done else "starting")
    return (f'<div class="sp-progress"><progress value="{done}" max="{total}"></progress>'
            f'<span>{html.escape(what)} {done} of {total} · {eta}</span></div>')


def idle_progress(text: str = "") -> str:
    return f'<div class="sp-progress sp-idle"><span>{html.escape(text)}</span></div>'


CSS = """
.sp-pixelated img { image-rendering: pixelated; }
.sp-legends { display: flex; flex-wrap: wrap; gap: 6px 18px; font-size: 13px;
              align-items: center; }
.sp-key { display: inline-flex; align-items: center; gap: 6px; }
.sp-bar { display: inline-block; width: 120px; height: 12px; border-radius: 2px; }
.sp-swatch { display: inline-block; width: 14px; height: 12px; border-radius: 2px; }
.sp-plain { background: #888; opacity: .45; }
.sp-progress { display: flex; align-items: center; gap: 10px; font-size: 13px;
               min-height: 22px; }
.sp-progress progress { width: 180px; height: 10px; }
#filmstrip, #filmstrip .grid-wrap { height: auto !important; max-height: none !important;
                                    min-height: 0 !important; }
#legends, #depth-readout { min-width: 260px; }
#filmstrip .grid-container { grid-template-columns: repeat(auto-fill, minmax(84px, 1fr))
                             !important; }
.sp-model-line p { margin: 0; font-size: 13px; white-space: nowrap; overflow-x: auto; }
@media (max-width: 700px) {
  #watch-main { flex-direction: column; }
  #watch-controls { display: contents; }
  #prompt { order: 1; }
  #watch-buttons { order: 2; }
  #watch-right { order: 3; }
  #watch-settings { order: 4; }
}
.sp-pitch p { margin: 0; }
"""

# Before a model job is sent: a fresh id for it (the last input), and on a narrow screen the
# results brought into view.
JOB_JS = """
(...args) => {
  const n = args.length;
  const id = (self.crypto && crypto.randomUUID) ? crypto.randomUUID()
    : String(Date.now()) + Math.random();
  if (window.innerWidth < 700) {
    const target = document.querySelector('#%s');
    if (target) target.scrollIntoView({behavior: 'smooth', block: 'start'});
  }
  return [...args.slice(0, INPUTS - 1), id];
}
"""


def job_js(n_inputs: int, scroll_to: str) -> str:
    """JOB_JS for a job with `n_inputs` inputs (the job id last) that shows its results in
    `scroll_to` (an element id)."""
    return JOB_JS.replace("INPUTS", str(n_inputs)) % scroll_to


# the depth view's hover readout: values from the readout's data attribute under the pointer
HOVER_JS = """
document.addEventListener('mousemove', (e) => {
  const img = e.target.closest && e.target.closest('#depth-image img');
  const box = element.querySelector('.depth-readout');
  if (!img || !box) return;
  const r = img.getBoundingClientRect(), n = +box.dataset.n;
  box._values = box._values || box.dataset.depth.split(',').map(Number);
  const x = Math.floor((e.clientX - r.left) / r.width * n);
  const y = Math.floor((e.clientY - r.top) / r.height * n);
  if (x < 0 || y < 0 || x >= n || y >= n) return;
  box.firstChild.textContent = 'depth at x ' + x + ', y ' + y + ' (of ' + n + '): '
    + box._values[y * n + x].toFixed(2) + ' z-units (+ = near)';
});
"""
