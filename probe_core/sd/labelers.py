"""Labelers for Stable Diffusion images, from transformers: depth by DPT, saliency by CLIPSeg.

    >>> labeler = HFLabeler.load()                       # Intel/dpt-large + CIDAS/clipseg-rd64-refined
    >>> depth, saliency = labeler(images)                # images (N, H, W, 3) uint8
    >>> depth.shape, saliency.shape                      # (N, H, W) z-normalised inverse depth, P(object)

The paper labels its generated images with MiDaS (DPT-Large) for depth and TRACER for the
salient object. DPT-Large is in transformers (`DPTForDepthEstimation`); TRACER is not, and no
prompt-free salient-object model is in transformers without remote code (which we do not run).
So saliency comes from CLIPSeg (`CLIPSegForImageSegmentation`), a text-conditioned segmenter,
asked for `saliency_query` ("the main object" by default), or, prompt-free, from a panoptic
segmenter's main segment (`PanopticSaliency`: Mask2Former / OneFormer). Neither is TRACER:
scores of our SD probes are against the chosen labeler's notion of the salient object, and say
so. Depth may come from any depth-estimation model (`DEPTH_MODELS`; metric ones are inverted).

Both models are read from the Hugging Face cache or local folders (`depth_model`,
`saliency_model`); offline and not cached, loading raises `ModelUnavailableError`.
The labeler has the same call signature as `SceneLabeler`, so every workflow takes either.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..metrics import zscore
from ..models import ModelUnavailableError, is_scene_model
from ..settings import EMBEDDED_LABELER
from ..world.labeler import SceneLabeler, check_images

DEFAULT_DEPTH_MODEL = "Intel/dpt-large"  # the MiDaS v3 DPT-Large the paper uses
# depth models by short name (any transformers depth-estimation id or folder works too)
DEPTH_MODELS = {
    "dpt-large": DEFAULT_DEPTH_MODEL,
    "depth-anything-v2-small": "depth-anything/Depth-Anything-V2-Small-hf",
    "zoedepth": "Intel/zoedepth-nyu-kitti",
    "depth-pro": "apple/DepthPro-hf",
}
# model types whose `predicted_depth` is metric distance (larger is farther); the others
# (DPT / MiDaS, Depth Anything) give relative inverse depth (larger is nearer)
METRIC_DEPTH_TYPES = ("zoedepth", "depth_pro")
DEFAULT_SALIENCY_MODEL = "CIDAS/clipseg-rd64-refined"
# the prompt-free choice: a panoptic segmenter's main segment (PanopticSaliency)
PANOPTIC_SALIENCY_MODEL = "facebook/mask2former-swin-tiny-coco-panoptic"
SALIENCY_MODELS = {"clipseg": DEFAULT_SALIENCY_MODEL, "mask2former": PANOPTIC_SALIENCY_MODEL}
DEFAULT_SALIENCY_QUERY = "the main object"


def _load(loader, name: str, what: str):
    try:
        return loader(name)
    except (OSError, ValueError) as err:
        raise ModelUnavailableError(
            f"could not load the {what} model {name!r}: it is not in the local Hugging Face "
            f"cache or not a folder with its files, and the hub cannot be reached offline. "
            f"Download it once with internet (`hf download {name}`) or pass a local folder. "
            f"({type(err).__name__}: {str(err)[:200]})") from None


@dataclass(frozen=True)
class HFLabelerSettings:
    """How an HFLabeler runs its two models."""
    saliency_query: str = DEFAULT_SALIENCY_QUERY  # the text CLIPSeg segments
    device: str = "cpu"  # where both models run
    batch_size: int = 8  # images per forward pass


class ClipSegSaliency:
    """P(object) from CLIPSeg asked for a text (`query`): (B, H, W) per chunk of images."""
    name = "clipseg"

    def __init__(self, model, processor, tokenizer, query: str, device: str = "cpu"):
        self.model, self.processor, self.tokenizer = model.eval().to(device), processor, tokenizer
        self.query, self.device = query, device

    def __call__(self, chunk: list[np.ndarray], size) -> np.ndarray:
        px = self.processor(images=chunk, return_tensors="pt")["pixel_values"]
        text = self.tokenizer([self.query] * len(chunk), padding=True, return_tensors="pt")
        logits = self.model(input_ids=text["input_ids"].to(self.device),
                            attention_mask=text["attention_mask"].to(self.device),
                            pixel_values=px.to(self.device)).logits
        logits = logits.reshape(len(chunk), *logits.shape[-2:])  # (B, h, w)
        prob = torch.sigmoid(F.interpolate(logits[:, None].float(), size=size, mode="bilinear",
                                           align_corners=False)[:, 0])
        return prob.cpu().numpy()


def salient_segment(segmentation: np.ndarray, segments: list[dict]) -> np.ndarray:
    """The prompt-free object of a panoptic segmentation ((H, W) segment ids, and each
    segment's {"id", "score"}): of the segments covering 0.5% to 60% of the image that do
    not span it from side to side (a floor, the sky, a wall), the one with the highest
    score x centrality (1 at the centre, 0 at a corner, by its mask's centre of mass);
    (H, W) float 0/1, all zeros when none qualifies."""
    h, w = segmentation.shape
    best, best_value = None, 0.0
    for seg in segments:
        mask = segmentation == seg["id"]
        share = mask.mean()
        if not 0.005 <= share <= 0.6 or (mask[:, 0].any() and mask[:, -1].any()):
            continue
        ys, xs = np.nonzero(mask)
        off = np.hypot((ys.mean() + 0.5) / h - 0.5, (xs.mean() + 0.5) / w - 0.5) / np.hypot(.5, .5)
        value = float(seg.get("score", 1.0)) * (1.0 - off)
        if value > best_value:
            best, best_value = mask, value
    return (best if best is not None else np.zeros((h, w), bool)).astype(np.float32)


class PanopticSaliency:
    """A prompt-free object: a panoptic segmenter (Mask2Former / OneFormer through
    transformers' universal segmentation, no remote code) cuts the image into segments, and
    `salient_segment` picks the main one. Not a trained salient-object detector (the paper's
    TRACER is not in transformers): its object is the central, confident, object-sized
    segment."""
    name = "panoptic"

    def __init__(self, model, processor, device: str = "cpu"):
        self.model, self.processor, self.device = model.eval().to(device), processor, device

    def __call__(self, chunk: list[np.ndarray], size) -> np.ndarray:
        px = self.processor(images=chunk, return_tensors="pt")["pixel_values"]
        out = self.model(pixel_values=px.to(self.device))
        results = self.processor.post_process_panoptic_segmentation(
            out, target_sizes=[tuple(size)] * len(chunk), label_ids_to_fuse=set())
        return np.stack([salient_segment(r["segmentation"].cpu().numpy(), r["segments_info"])
                         for r in results])


def _saliency(name: str, settings: HFLabelerSettings):
    """The saliency half by model: a CLIPSeg checkpoint, or a universal-segmentation one."""
    from transformers import (AutoConfig, AutoImageProcessor,
                              AutoModelForUniversalSegmentation, AutoTokenizer,
                              CLIPSegForImageSegmentation)

    f32 = dict(dtype=torch.float32, use_safetensors=True)
    config = _load(AutoConfig.from_pretrained, name, "saliency")
    processor = _load(AutoImageProcessor.from_pretrained, name, "saliency")
    if config.model_type == "clipseg":
        model = _load(lambda n: CLIPSegForImageSegmentation.from_pretrained(n, **f32), name,
                      "saliency")
        return ClipSegSaliency(model, processor,
                               _load(AutoTokenizer.from_pretrained, name, "saliency"),
                               settings.saliency_query, settings.device)
    model = _load(lambda n: AutoModelForUniversalSegmentation.from_pretrained(n, **f32), name,
                  "saliency")
    return PanopticSaliency(model, processor, settings.device)


class HFLabeler:
    """Callable: (N, H, W, 3) uint8 -> ((N, H, W) z-normalised inverse depth, (N, H, W) P(object))."""

    def __init__(self, depth_model, depth_processor, saliency,
                 settings: HFLabelerSettings = HFLabelerSettings(), info: dict | None = None):
        self.depth_model = depth_model.eval().to(settings.device)
        self.depth_processor = depth_processor
        self.saliency = saliency  # chunk of images, size -> (B, H, W) P(object)
        self.device = settings.device
        self.batch_size = settings.batch_size
        self.info = info or {}

    @classmethod
    def load(cls, depth_model: str = DEFAULT_DEPTH_MODEL,
             saliency_model: str = DEFAULT_SALIENCY_MODEL,
             saliency_query: str = DEFAULT_SALIENCY_QUERY, device: str = "cpu",
             batch_size: int = 8) -> "HFLabeler":
        from transformers import AutoImageProcessor, AutoModelForDepthEstimation

        # inputs are float32, whatever the checkpoint's dtype; safetensors only, never pickles
        f32 = dict(dtype=torch.float32, use_safetensors=True)
        depth = _load(lambda n: AutoModelForDepthEstimation.from_pretrained(n, **f32),
                      depth_model, "depth")
        depth_proc = _load(AutoImageProcessor.from_pretrained, depth_model, "depth")
        settings = HFLabelerSettings(saliency_query, device, batch_size)
        saliency = _saliency(saliency_model, settings)
        info = {"depth_model": depth_model, "saliency_model": saliency_model,
                "saliency": saliency.name}
        if saliency.name == "clipseg":
            info["saliency_query"] = saliency_query
        return cls(depth, depth_proc, saliency, settings, info)

    @torch.no_grad()
    def __call__(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        images = check_images(images)
        size = images.shape[1:3]
        depths, sals = [], []
        for i in range(0, len(images), self.batch_size):
            chunk = list(images[i:i + self.batch_size])
            depths.append(self._depth(chunk, size))
            sals.append(self.saliency(chunk, size))
        depth = np.concatenate(depths)
        return np.stack([zscore(d) for d in depth]).astype(np.float32), np.concatenate(sals)

    def _depth(self, chunk: list[np.ndarray], size) -> np.ndarray:
        """Inverse depth, larger is nearer, resized to the image: (B, H, W)."""
        px = self.depth_processor(images=chunk, return_tensors="pt")["pixel_values"]
        pred = self.depth_model(pixel_values=px.to(self.device)).predicted_depth  # (B, h, w)
        pred = F.interpolate(pred[:, None].float(), size=size, mode="bilinear",
                             align_corners=False)[:, 0]
        return nearer_is_larger(pred, self.depth_model.config.model_type).cpu().numpy()


def nearer_is_larger(predicted: torch.Tensor, model_type: str) -> torch.Tensor:
    """A depth model's output as inverse depth, larger nearer, whatever the model: metric
    distance (ZoeDepth, DepthPro) is inverted (1 / metres); relative inverse depth (DPT,
    Depth Anything) is kept."""
    if model_type in METRIC_DEPTH_TYPES:
        return 1.0 / predicted.clamp_min(1e-3)
    return predicted


def load_labeler(spec: str | None, model: str = "tiny-scenes", device: str = "cpu"):
    """A labeler by name: a SceneLabeler folder (has labeler.safetensors), or
    "hf" (DPT-Large + CLIPSeg), or a DEPTH_MODELS name (that depth model + CLIPSeg), or
    "DEPTH_MODEL,SALIENCY_MODEL" (names, ids or folders).
    None picks the model's own: the shipped scene labeler for the embedded model and other
    models `train-model` made, else "hf"."""
    from pathlib import Path

    if spec is None:
        spec = str(EMBEDDED_LABELER) if is_scene_model(model) else "hf"
    if spec == "hf":
        return HFLabeler.load(device=device)
    if (Path(spec) / "labeler.safetensors").is_file():
        return SceneLabeler.load(spec)
    if spec in DEPTH_MODELS:  # another depth model, CLIPSeg for the object
        return HFLabeler.load(DEPTH_MODELS[spec], device=device)
    if "," in spec:
        depth, saliency = (s.strip() for s in spec.split(",", 1))
        return HFLabeler.load(DEPTH_MODELS.get(depth, depth),
                              SALIENCY_MODELS.get(saliency, saliency), device=device)
    raise ValueError(f"unknown labeler {spec!r}: pass a scene-labeler folder, 'hf' "
                     f"(DPT-Large + CLIPSeg), a depth model ({', '.join(DEPTH_MODELS)}) or "
                     f"'DEPTH_MODEL,SALIENCY_MODEL'")
