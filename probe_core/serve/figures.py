"""What the app shows, drawn from a run's cached maps: step views, filmstrip, emergence, heat maps.

    >>> layer_label(unet.config, "up_blocks.1.attentions.2.transformer_blocks.0.attn1")  # 'up1.2 (8x8)'
    >>> tiles = filmstrip_tiles(x0_images, maps)            # [(tile, "step 1"), ...]
    >>> scores = emergence_scores(maps, x0_labels, final_labels)   # Emergence: per-step curves
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from ..metrics import dice, pearson
from ..settings import DISPLAY_SIZE, THUMB_SIZE
from ..viz import (colorize_depth, figure_to_array, heat_overlay, label_frame,
                   overlay_mask, pyplot, to_size)


def layer_label(unet_config, layer: str) -> str:
    """'up_blocks.1.attentions.2.transformer_blocks.0.attn1' -> 'up1.2 (8x8)'; a transformer's
    'transformer_blocks.3.attn' -> 'block 3', 'single_transformer_blocks.5.attn' ->
    'single 5'."""
    parts = layer.split(".")
    if parts[0] in ("transformer_blocks", "single_transformer_blocks"):
        return f"{'single' if parts[0].startswith('single') else 'block'} {parts[1]}"
    n_levels = len(unet_config.block_out_channels)
    latent = unet_config.sample_size
    if parts[0] == "mid_block":
        return f"mid ({latent // 2 ** (n_levels - 1)}x{latent // 2 ** (n_levels - 1)})"
    level = int(parts[1])
    res = latent // 2 ** (level if parts[0] == "down_blocks" else n_levels - 1 - level)
    return f"{parts[0].split('_')[0]}{level}.{parts[3]} ({res}x{res})"


@dataclass
class StepView:
    """One step as displayed, each image DISPLAY_SIZE square (depth and saliency None where the
    step has no probe maps)."""
    x0: np.ndarray  # (S, S, 3) uint8 x0 prediction as an image (a preview or the VAE decode)
    depth: np.ndarray | None  # (S, S, 3) depth colours alone, not over x0 (whatever the opacity)
    saliency: np.ndarray | None  # (S, S, 3) object overlay on x0, by the opacity
    caption: str
    readout: str = ""  # the depth view's hover values (depth_readout), "" without probe maps


def step_view(x0: np.ndarray, maps: tuple | None, opacity: float, caption: str) -> StepView:
    """x0 (H, W, 3) and its (depth, P(object)) maps -> the displayed StepView: the depth view
    in depth colours alone (whatever the opacity), the object overlaid on x0 by `opacity`."""
    if maps is None:
        return StepView(to_size(x0, DISPLAY_SIZE), None, None, caption)
    depth, prob = maps
    x0 = to_size(x0, depth.shape[0])  # a preview may be smaller than the maps
    return StepView(to_size(x0, DISPLAY_SIZE), to_size(colorize_depth(depth), DISPLAY_SIZE),
                    to_size(overlay_mask(x0, prob, opacity), DISPLAY_SIZE), caption,
                    depth_readout(depth))


HOVER_GRID = 64  # depth values sent for the hover readout: at most 64 x 64


def depth_readout(depth: np.ndarray) -> str:
    """The hover readout's HTML for an (H, W) depth map: the values on a grid of at most
    HOVER_GRID a side, in a data attribute the page's script reads as the pointer moves over
    the depth view."""
    d = np.asarray(depth, np.float32)
    n = min(HOVER_GRID, d.shape[0])
    idx = (np.arange(n) * d.shape[0]) // n
    values = ",".join(f"{v:.2f}" for v in np.nan_to_num(d[idx][:, idx]).ravel())
    return (f'<div class="depth-readout" data-n="{n}" data-depth="{values}">'
            "<span>Hover the depth view to read its values (z-units of inverse depth, "
            "+ = near).</span></div>")


def filmstrip_tiles(x0_images: list[np.ndarray], maps: list) -> list[tuple[np.ndarray, str]]:
    """One square tile per step, 2 x THUMB_SIZE a side: x0 | depth over saliency overlay |
    depth with the object's outline (x0 alone where a step has no maps)."""
    tiles = []
    for k, (x0, m) in enumerate(zip(x0_images, maps)):
        if m is None:
            tile = to_size(x0, 2 * THUMB_SIZE)
        else:
            depth = colorize_depth(m[0])
            x0 = to_size(x0, depth.shape[0])  # a preview may be smaller than the maps
            tile = np.concatenate([
                np.concatenate([to_size(x0, THUMB_SIZE), to_size(depth, THUMB_SIZE)], 1),
                np.concatenate([to_size(overlay_mask(x0, m[1], 0.7), THUMB_SIZE),
                                to_size(overlay_mask(depth, m[1], 0.0), THUMB_SIZE)], 1)], 0)
        tiles.append((tile, f"step {k + 1}"))
    return tiles


@dataclass
class Emergence:
    """Per step (1-based): the probe's agreement with its own last-step reading and, with a
    labeler, the labeler on that step's x0 against its labels of the final image."""
    steps: list[int]
    probe_dice: list[float]
    probe_pearson: list[float]
    labeler_dice: list[float]
    labeler_pearson: list[float]


def emergence_scores(maps: list[tuple], x0_labels: list[tuple] | None,
                     final_labels: tuple | None) -> Emergence:
    """maps: every step's (depth, P(object)); x0_labels: the labeler on every step's x0 (None
    without a labeler); final_labels: the labeler on the final image."""
    fd, fs = maps[-1]
    e = Emergence(list(range(1, len(maps) + 1)), [], [], [], [])
    for k, (d, s) in enumerate(maps):
        e.probe_dice.append(dice(s > 0.5, fs > 0.5))
        e.probe_pearson.append(pearson(d, fd))
        if x0_labels is not None and final_labels is not None:
            ld, ls = x0_labels[k]
            e.labeler_dice.append(dice(ls > 0.5, final_labels[1] > 0.5))
            e.labeler_pearson.append(pearson(ld, final_labels[0]))
    return e


def layer_by_step(ax, arr: np.ndarray, labels: list[str], steps: list[int], cmap: str,
                  vmin: float, vmax: float, fontsize: float):
    """Draw a (layers, steps) array as a heat map on `ax`: short layer names down the side,
    every fifth or so 1-based step along the bottom. Returns the image artist."""
    im = ax.imshow(arr, aspect="auto", cmap=cmap, vmin=vmin, vmax=vmax)
    ax.set_yticks(range(len(labels)), [label.split(" (")[0] for label in labels],
                  fontsize=fontsize)
    every = max(1, len(steps) // 5)
    ax.set_xticks(range(0, len(steps), every), [str(k) for k in steps[::every]],
                  fontsize=fontsize)
    ax.set_xlabel("denoising step", fontsize=fontsize)
    return im


class PixelPlot:
    """The pixel inspector's figure, laid out and drawn once per (layers, steps, labeler) and
    then only its data redrawn over the saved background (blitting): a click costs the data's
    drawing, not the figure's layout and tick labels."""

    def __init__(self, labels: list[str], n_steps: int, with_labeler: bool):
        plt = pyplot()
        steps = np.arange(1, n_steps + 1)
        fig, axes = plt.subplots(1, 3, figsize=(10.5, 3.0), dpi=100,
                                 gridspec_kw={"width_ratios": [1.2, 1, 1]})
        fig.subplots_adjust(left=0.06, right=0.99, bottom=0.16, top=0.9, wspace=0.45)
        ax = axes[0]
        prob_ax = ax.twinx()  # P(object) on its own 0..1 axis, right
        nan = np.full(n_steps, np.nan)
        self.lines = [ax.plot(steps, nan, "-o", ms=3, color="#e8762d", label="depth probe (z)",
                              animated=True)[0],
                      prob_ax.plot(steps, nan, "-o", ms=3, color="#d0259c",
                                   label="P(object) probe", animated=True)[0]]
        if with_labeler:
            self.lines += [ax.plot(steps, nan, ":", lw=2, color="#e8762d",
                                   label="labeler on x0: depth", animated=True)[0],
                           prob_ax.plot(steps, nan, ":", lw=2, color="#d0259c",
                                        label="labeler on x0: object", animated=True)[0]]
        ax.set_xticks(steps[::max(1, n_steps // 5)])
        ax.set_xlim(0.5, n_steps + 0.5)
        ax.set_ylim(-3.0, 3.0)
        prob_ax.set_ylim(-0.02, 1.02)
        ax.set_ylabel("depth (z-units, + near)", fontsize=10, color="#b85a1f")
        prob_ax.set_ylabel("P(object)", fontsize=10, color="#a01c78")
        ax.set_xlabel("denoising step", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(handles=self.lines, fontsize=9, loc="lower left")
        self.titles = [ax.set_title(" ", fontsize=10)]
        self.images = []
        for ax, title, cmap in ((axes[1], "depth probe (z), every layer", "magma"),
                                (axes[2], "P(object), every layer", "viridis")):
            im = layer_by_step(ax, np.zeros((len(labels), n_steps)), labels, list(steps), cmap,
                               0, 1, 10)
            im.set_animated(True)
            self.images.append(im)
            self.titles.append(ax.set_title(title, fontsize=10))
        for t in self.titles:
            t.set_animated(True)
        self.fig, self.labels = fig, labels
        fig.canvas.draw()
        self.background = fig.canvas.copy_from_bbox(fig.bbox)
        self.lock = threading.Lock()

    def __call__(self, depth, prob, chosen, labeler, where) -> np.ndarray:
        canvas = self.fig.canvas
        with self.lock:
            canvas.restore_region(self.background)
            series = [depth[:, chosen], prob[:, chosen]] + (list(labeler) if labeler else [])
            for k, (line, y) in enumerate(zip(self.lines, series)):
                line.set_ydata(np.clip(y, -3.0, 3.0) if k % 2 == 0 else np.clip(y, 0.0, 1.0))
            depth_range = (float(depth.min()), float(depth.max()))
            for im, arr, (low, high) in zip(self.images, (depth, prob),
                                            (depth_range, (0.0, 1.0))):
                im.set_data(arr.T)
                im.set_clim(low, high if high > low else low + 1e-6)
            self.titles[0].set_text(f"pixel (x {where[0]}, y {where[1]}), layer "
                                    f"{self.labels[chosen]}")
            self.titles[1].set_text(f"depth probe (z), every layer ({depth_range[0]:.1f} to "
                                    f"{depth_range[1]:.1f})")
            self.titles[2].set_text("P(object), every layer (0.0 to 1.0)")
            for artist in (*self.lines, *self.images, *self.titles):
                artist.axes.draw_artist(artist)
            rgba = np.asarray(canvas.buffer_rgba())
            alpha = rgba[..., 3:].astype(np.float32) / 255.0
            return (rgba[..., :3] * alpha + 255.0 * (1 - alpha) + 0.5).astype(np.uint8)


_PIXEL_PLOTS: dict[tuple, PixelPlot] = {}  # (layer labels, steps, with labeler) -> figure
_PIXEL_PLOTS_LOCK = threading.Lock()


def pixel_plot(depth: np.ndarray, prob: np.ndarray, labels: list[str], chosen: int,
               labeler: tuple[list, list] | None, where: tuple[int, int]) -> np.ndarray:
    """One pixel through the run: (steps, layers) probe depth and P(object) at that pixel; the
    chosen layer over the steps (with the labeler on each step's x0, dotted), and every layer
    as a layer x step heat map. Figures are kept per (layers, steps, labeler) shape, at most
    eight."""
    key = (tuple(labels), depth.shape[0], labeler is not None)
    with _PIXEL_PLOTS_LOCK:
        plot = _PIXEL_PLOTS.pop(key, None)
        if plot is None:
            plot = PixelPlot(labels, depth.shape[0], labeler is not None)
            if len(_PIXEL_PLOTS) >= 8:
                old = _PIXEL_PLOTS.pop(next(iter(_PIXEL_PLOTS)))
                pyplot().close(old.fig)
        _PIXEL_PLOTS[key] = plot  # most recently used last
    return plot(depth, prob, chosen, labeler, where)


def depth_metric(scores: dict) -> tuple[str, str]:
    """(key, title) of the depth score a heat map shows: the partial correlation beyond the
    layout when an evaluation has it (plain Pearson is high for any map with the scene's
    layout), else Pearson."""
    return (("partial", "depth beyond layout") if "partial" in scores
            else ("pearson", "depth Pearson"))


def heatmap(scores: dict, labels: list[str]) -> np.ndarray:
    """Layer x step heat maps of held-out probe scores (an evaluation's "probes" entry), with
    `labels` for its layers; depth as `depth_metric` says."""
    plt = pyplot()
    # sized so that tick labels stay >= 11 px where the page shows it (about 80% scale)
    fig, axes = plt.subplots(1, 2, figsize=(7.2, 3.6))
    for ax, (metric, title) in zip(axes, (("dice", "saliency Dice"), depth_metric(scores))):
        arr = np.array(scores[metric]).T  # (layers, steps)
        im = layer_by_step(ax, arr, labels, [s + 1 for s in scores["steps"]], "viridis", 0, 1,
                           11)
        ax.set_title(f"{title}\n{scores['n']} held-out images", fontsize=12)
        cbar = fig.colorbar(im, ax=ax, fraction=0.05)
        cbar.ax.tick_params(labelsize=10)
    fig.tight_layout()
    return figure_to_array(fig)


def edit_images(original: np.ndarray, edit) -> tuple[np.ndarray, ...]:
    """(before, after, target, achieved), DISPLAY_SIZE square, for a steering.EditOutcome on
    the (H, W, 3) `original` image: a depth part in depth colours, an object mask part as an
    overlay (on the depth colours when the edit has both)."""
    masks = [p for p in edit.parts if p.task == "saliency"]
    depths = [p for p in edit.parts if p.task == "depth"]
    target, achieved = original, edit.image
    if depths:
        target = colorize_depth(depths[0].target)
        if depths[0].achieved is not None:
            achieved = colorize_depth(depths[0].achieved)
    if masks:
        target = overlay_mask(target, masks[0].target, 0.6)
        if masks[0].achieved is not None:
            achieved = overlay_mask(achieved, masks[0].achieved, 0.6)
    return tuple(to_size(x, DISPLAY_SIZE) for x in (original, edit.image, target, achieved))


def word_view(image: np.ndarray, word_map: np.ndarray, word: str, when: str) -> np.ndarray:
    """A word's (H, W) attention map in [0, 1] over the (H, W, 3) image, DISPLAY_SIZE square
    under a title band."""
    over = heat_overlay(to_size(image, DISPLAY_SIZE), to_size(word_map, DISPLAY_SIZE))
    return label_frame(over, f"'{word}' attention, {when}")


def word_compare(image: np.ndarray, prob: np.ndarray, word_map: np.ndarray,
                 word: str) -> np.ndarray:
    """Three panels, each DISPLAY_SIZE a side under a title: the saliency probe's P(object),
    the word's attention map, and their difference (attention - P(object): orange where only
    the word looks, blue where only the probe sees the object)."""
    from matplotlib import colormaps

    image = to_size(image, DISPLAY_SIZE)
    p, w = to_size(prob, DISPLAY_SIZE), to_size(word_map, DISPLAY_SIZE)
    diff = colormaps["PuOr_r"]((w - p + 1) / 2)[..., :3] * 255
    panels = [label_frame(overlay_mask(image, p, 0.6), "saliency probe P(object)"),
              label_frame(heat_overlay(image, w), f"'{word}' attention"),
              label_frame(diff.astype(np.uint8), "attention - P(object)")]
    gap = np.full((panels[0].shape[0], 6, 3), 255, np.uint8)
    return np.concatenate([panels[0], gap, panels[1], gap, panels[2]], 1)


DIFF_RANGE = 2.0  # the depth difference view spans -2..+2 z-units


def compare_grid(images: tuple[np.ndarray, np.ndarray], maps: tuple, titles: tuple[str, str]
                 ) -> np.ndarray:
    """Two runs at one step side by side: rows image / depth / object overlay, columns A | B |
    B - A (image: dark where it changed; depth: orange = B nearer, purple = B farther, over
    +-DIFF_RANGE z-units; object: orange = only B sees it, purple = only A). images: two
    (H, W, 3); maps: two (depth, P(object)) or None. Each cell is DISPLAY_SIZE / 2 a side,
    under a title band."""
    from matplotlib import colormaps

    c = DISPLAY_SIZE // 2
    diverging = colormaps["PuOr_r"]

    def cell(a, title):
        return label_frame(to_size(a, c), title)

    ia, ib = (to_size(i, c).astype(np.int16) for i in images)
    change = np.clip(np.abs(ib - ia).mean(-1, keepdims=True) * 3, 0, 255).astype(np.uint8)
    rows = [[cell(images[0], f"A: {titles[0]}"), cell(images[1], f"B: {titles[1]}"),
             cell(255 - np.repeat(change, 3, -1), "|B - A| image (x3)")]]
    if maps[0] is not None and maps[1] is not None:
        (da, pa), (db, pb) = ((to_size(d, c), to_size(p, c)) for d, p in maps)
        dd = diverging(np.clip((db - da) / DIFF_RANGE, -1, 1) / 2 + 0.5)[..., :3] * 255
        dp = diverging(np.clip(pb - pa, -1, 1) / 2 + 0.5)[..., :3] * 255
        rows.append([cell(colorize_depth(da), "A depth"), cell(colorize_depth(db), "B depth"),
                     cell(dd.astype(np.uint8), "B - A depth")])
        rows.append([cell(overlay_mask(to_size(images[0], c), pa, 0.6), "A object"),
                     cell(overlay_mask(to_size(images[1], c), pb, 0.6), "B object"),
                     cell(dp.astype(np.uint8), "B - A P(object)")])
    gap_v = np.full((rows[0][0].shape[0], 4, 3), 255, np.uint8)
    lines = [np.concatenate([r[0], gap_v, r[1], gap_v, r[2]], 1) for r in rows]
    gap_h = np.full((4, lines[0].shape[1], 3), 255, np.uint8)
    return np.concatenate([x for line in lines for x in (line, gap_h)][:-1], 0)
