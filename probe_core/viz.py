"""Pure image helpers for display: no model code here.

    >>> big = upscale(image, 4)                    # (64, 64, 3) uint8 -> (256, 256, 3), nearest
    >>> rgb = colorize_depth(depth)                # (H, W) z-scores -> (H, W, 3), bright = near
    >>> over = overlay_mask(image, prob, 0.5)      # magenta where P(object) > 0.5
"""

from __future__ import annotations

import numpy as np

DEPTH_RANGE = (-2.5, 2.5)  # z-normalised inverse depth shown from far (dark) to near (bright)
MASK_COLOUR = np.array([255, 40, 200], np.float32)  # magenta: rare in the scenes


def upscale(image: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour upscaling of an (H, W) or (H, W, C) array by an integer factor."""
    if factor < 1:
        raise ValueError(f"factor must be >= 1, got {factor}")
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


def to_size(image: np.ndarray, size: int) -> np.ndarray:
    """Nearest-neighbour resize of a square (H, H, ...) array to (size, size, ...)."""
    h = image.shape[0]
    if size % h == 0:
        return upscale(image, size // h)
    idx = (np.arange(size) * h // size)
    return image[idx][:, idx]


def colorize_depth(depth: np.ndarray, vmin: float = DEPTH_RANGE[0],
                   vmax: float = DEPTH_RANGE[1]) -> np.ndarray:
    """(H, W) depth in probe units -> (H, W, 3) uint8 with the 'magma' map (bright = near)."""
    from matplotlib import colormaps

    x = (np.nan_to_num(np.asarray(depth, np.float32)) - vmin) / (vmax - vmin)
    return (colormaps["magma"](np.clip(x, 0, 1))[..., :3] * 255 + 0.5).astype(np.uint8)


def overlay_mask(image: np.ndarray, prob: np.ndarray, opacity: float = 0.5,
                 threshold: float = 0.5) -> np.ndarray:
    """Tint (H, W, 3) image magenta where (H, W) prob > threshold, with an outline."""
    import cv2

    mask = np.asarray(prob) > threshold
    out = image.astype(np.float32).copy()
    out[mask] = (1 - opacity) * out[mask] + opacity * MASK_COLOUR
    edge = mask ^ (cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0)
    out[edge] = MASK_COLOUR
    return out.astype(np.uint8)


def heat_overlay(image: np.ndarray, heat: np.ndarray, opacity: float = 0.6) -> np.ndarray:
    """(H, W, 3) image with an (H, W) map in [0, 1] laid over it in 'inferno' colours, each
    pixel as opaque as its value (times `opacity`): where the map is 0 the image shows."""
    from matplotlib import colormaps

    h = np.clip(np.nan_to_num(np.asarray(heat, np.float32)), 0, 1)
    colour = colormaps["inferno"](h)[..., :3] * 255
    a = (opacity * np.sqrt(h))[..., None]  # sqrt: weak attention still shows
    return (image.astype(np.float32) * (1 - a) + colour * a + 0.5).astype(np.uint8)


def pyplot():
    """matplotlib.pyplot on the file-only Agg backend (no display on a server)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure_to_array(fig) -> np.ndarray:
    """Render a matplotlib figure to an (H, W, 3) uint8 array and close it."""
    import matplotlib.pyplot as plt

    # the Agg canvas's own pixels: no PNG encoded and decoded again (a fifth of a small figure's
    # time); white behind, as a saved PNG would be
    fig.set_dpi(100)
    fig.canvas.draw()
    rgba = np.asarray(fig.canvas.buffer_rgba()).astype(np.float32)
    plt.close(fig)
    alpha = rgba[..., 3:] / 255.0
    return (rgba[..., :3] * alpha + 255.0 * (1 - alpha) + 0.5).astype(np.uint8)


LABEL_PX = 13  # text size of a frame's title band: readable where the page shows it at 1:1


def label_frame(frame: np.ndarray, text: str, band: int = 20) -> np.ndarray:
    """(H, W, 3) uint8 -> (H + band, W, 3): a dark band on top with `text` written in it."""
    from PIL import Image, ImageDraw, ImageFont

    top = Image.new("RGB", (frame.shape[1], band), (20, 20, 20))
    font = ImageFont.load_default(size=LABEL_PX)
    ImageDraw.Draw(top).text((4, 2), text, fill=(240, 240, 240), font=font)
    return np.concatenate([np.asarray(top), frame], 0)


def frames_to_gif(frames: list[np.ndarray], path, duration_ms: int = 250) -> None:
    """Write (H, W, 3) uint8 frames as a looping GIF."""
    from PIL import Image

    images = [Image.fromarray(f) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=duration_ms, loop=0)
