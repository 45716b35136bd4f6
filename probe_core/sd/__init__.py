"""Stable Diffusion adapters: labelers from transformers (DPT depth, CLIPSeg saliency) and the
import of the authors' SD v1.4 probe files."""
