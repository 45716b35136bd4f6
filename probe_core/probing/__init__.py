"""The paper's science for any diffusers SD pipeline: the denoising loop, hooks on self-attention
layers, linear probes (readout and fitting), data collection, sharded training, evaluation."""
