"""Labelers for Stable Diffusion images, from transformers: depth by DPT, saliency by CLIPSeg.

    >>> labeler = HFLabeler.load()                       # Intel/dpt-large + CIDAS/clipseg-rd64-refined
    >>> depth, saliency = labeler(images)                # images (N, H, W, 3) uint8
    >>> depth.shape, saliency.shape                      # (N, H, W) z-normalised inverse depth, P(object)

The paper labels its generated images with MiDaS (DPT-Large) for depth and TRACER for the
salient object. DPT-Large is in transformers (`DPTForDepthEstimation`); TRACER is not, and no
prompt-free salient-object model is in transformers without remote code (which we do not run).
So saliency comes from CLIPSeg (`CLIPSegForImageSegmentation`), a text-conditioned segmenter,
asked for `saliency_query` ("the main object" by default). Its masks are not TRACER's: scores
of our SD probes are against CLIPSeg's notion of the salient object, and say so.

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
DEFAULT_SALIENCY_MODEL = "CIDAS/clipseg-rd64-refined"
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


class HFLabeler:
    """Callable: (N, H, W, 3) uint8 -> ((N, H, W) z-normalised inverse depth, (N, H, W) P(object))."""

    def __init__(self, depth_model, depth_processor, saliency_model, saliency_processor,
                 saliency_tokenizer, settings: HFLabelerSettings = HFLabelerSettings(),
                 info: dict | None = None):
        self.depth_model = depth_model.eval().to(settings.device)
        self.depth_processor = depth_processor
        self.saliency_model = saliency_model.eval().to(settings.device)
        self.saliency_processor = saliency_processor
        self.saliency_tokenizer = saliency_tokenizer
        self.saliency_query = settings.saliency_query
        self.device = settings.device
        self.batch_size = settings.batch_size
        self.info = info or {}

    @classmethod
    def load(cls, depth_model: str = DEFAULT_DEPTH_MODEL,
             saliency_model: str = DEFAULT_SALIENCY_MODEL,
             saliency_query: str = DEFAULT_SALIENCY_QUERY, device: str = "cpu",
             batch_size: int = 8) -> "HFLabeler":
        from transformers import (AutoImageProcessor, AutoModelForDepthEstimation, AutoTokenizer,
                                  CLIPSegForImageSegmentation)

        # inputs are float32, whatever the checkpoint's dtype; safetensors only, never pickles
        f32 = dict(dtype=torch.float32, use_safetensors=True)
        depth = _load(lambda n: AutoModelForDepthEstimation.from_pretrained(n, **f32),
                      depth_model, "depth")
        depth_proc = _load(AutoImageProcessor.from_pretrained, depth_model, "depth")
        sal = _load(lambda n: CLIPSegForImageSegmentation.from_pretrained(n, **f32),
                    saliency_model, "saliency")
        sal_proc = _load(AutoImageProcessor.from_pretrained, saliency_model, "saliency")
        sal_tok = _load(AutoTokenizer.from_pretrained, saliency_model, "saliency")
        info = {"depth_model": depth_model, "saliency_model": saliency_model,
                "saliency_query": saliency_query}
        return cls(depth, depth_proc, sal, sal_proc, sal_tok,
                   HFLabelerSettings(saliency_query, device, batch_size), info)

    @torch.no_grad()
    def __call__(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        images = check_images(images)
        size = images.shape[1:3]
        depths, sals = [], []
        for i in range(0, len(images), self.batch_size):
            chunk = list(images[i:i + self.batch_size])
            depths.append(self._depth(chunk, size))
            sals.append(self._saliency(chunk, size))
        depth = np.concatenate(depths)
        return np.stack([zscore(d) for d in depth]).astype(np.float32), np.concatenate(sals)

    def _depth(self, chunk: list[np.ndarray], size) -> np.ndarray:
        """DPT's relative inverse depth (larger is nearer), resized to the image: (B, H, W)."""
        px = self.depth_processor(images=chunk, return_tensors="pt")["pixel_values"]
        pred = self.depth_model(pixel_values=px.to(self.device)).predicted_depth  # (B, h, w)
        pred = F.interpolate(pred[:, None].float(), size=size, mode="bilinear",
                             align_corners=False)[:, 0]
        return pred.cpu().numpy()

    def _saliency(self, chunk: list[np.ndarray], size) -> np.ndarray:
        """CLIPSeg's P(query) per pixel, resized to the image: (B, H, W)."""
        px = self.saliency_processor(images=chunk, return_tensors="pt")["pixel_values"]
        text = self.saliency_tokenizer([self.saliency_query] * len(chunk), padding=True,
                                       return_tensors="pt")
        logits = self.saliency_model(input_ids=text["input_ids"].to(self.device),
                                     attention_mask=text["attention_mask"].to(self.device),
                                     pixel_values=px.to(self.device)).logits
        logits = logits.reshape(len(chunk), *logits.shape[-2:])  # (B, h, w)
        prob = torch.sigmoid(F.interpolate(logits[:, None].float(), size=size, mode="bilinear",
                                           align_corners=False)[:, 0])
        return prob.cpu().numpy()


def load_labeler(spec: str | None, model: str = "tiny-scenes", device: str = "cpu"):
    """A labeler by name: a SceneLabeler folder (has labeler.safetensors), or
    "hf" (DPT-Large + CLIPSeg), or "DEPTH_MODEL,SALIENCY_MODEL" (ids or folders).
    None picks the model's own: the shipped scene labeler for the embedded model and other
    models `train-model` made, else "hf"."""
    from pathlib import Path

    if spec is None:
        spec = str(EMBEDDED_LABELER) if is_scene_model(model) else "hf"
    if spec == "hf":
        return HFLabeler.load(device=device)
    if (Path(spec) / "labeler.safetensors").is_file():
        return SceneLabeler.load(spec)
    if "," in spec:
        depth, saliency = (s.strip() for s in spec.split(",", 1))
        return HFLabeler.load(depth, saliency, device=device)
    raise ValueError(f"unknown labeler {spec!r}: pass a scene-labeler folder, 'hf' "
                     f"(DPT-Large + CLIPSeg) or 'DEPTH_MODEL,SALIENCY_MODEL'")
