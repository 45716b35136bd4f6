"""Scores for probe maps against labels. Pure numpy, one image at a time.

    >>> dice(pred_mask, true_mask), iou(pred_mask, true_mask)
    >>> rmse(pred_depth, true_depth), pearson(pred_depth, true_depth)
"""

from __future__ import annotations

import numpy as np


def dice(pred: np.ndarray, target: np.ndarray) -> float:
    """Dice of two boolean masks (foreground class); 1.0 when both are empty."""
    pred, target = np.asarray(pred, bool), np.asarray(target, bool)
    total = pred.sum() + target.sum()
    if total == 0:
        return 1.0
    return float(2 * np.logical_and(pred, target).sum() / total)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boolean masks; 1.0 when both are empty."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def rmse(pred: np.ndarray, target: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.asarray(pred, float) - np.asarray(target, float)) ** 2)))


def pearson(pred: np.ndarray, target: np.ndarray) -> float:
    """Pearson correlation over pixels; 0.0 when either map is constant."""
    a = np.asarray(pred, float).ravel()
    b = np.asarray(target, float).ravel()
    a, b = a - a.mean(), b - b.mean()
    denom = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / denom) if denom > 0 else 0.0


def partial_correlation(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> float:
    """Correlation of maps x and y over pixels once z is regressed out of both: what x says
    about y beyond z. 0 where it is undefined (a constant map)."""
    rxy, rxz, ryz = pearson(x, y), pearson(x, z), pearson(y, z)
    denom = np.sqrt(max(1 - rxz ** 2, 0.0) * max(1 - ryz ** 2, 0.0))
    return float((rxy - rxz * ryz) / denom) if denom > 1e-9 else 0.0


def partial_correlation_given(x: np.ndarray, y: np.ndarray, zs) -> float:
    """Correlation of maps x and y over pixels once every map in `zs` (and a constant) is
    regressed out of both by least squares: what x says about y beyond all of them. With one
    map it equals partial_correlation, with the same rule for the undefined case (0 when
    almost nothing of x or y is left: the product of the shares of their variance left is
    under 1e-18); nan when any value is not a number."""
    x, y = np.asarray(x, float).ravel(), np.asarray(y, float).ravel()
    Z = np.column_stack([np.ones_like(x)] + [np.asarray(z, float).ravel() for z in zs])
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y)) and np.all(np.isfinite(Z))):
        return float("nan")

    def left(v):
        coef, *_ = np.linalg.lstsq(Z, v, rcond=None)
        return v - Z @ coef

    rx, ry = left(x), left(y)
    vx, vy = ((v - v.mean()) @ (v - v.mean()) for v in (x, y))
    if vx == 0 or vy == 0:
        return 0.0
    sx, sy = rx @ rx, ry @ ry
    share = np.sqrt(max(sx / vx, 0.0) * max(sy / vy, 0.0))
    return float(rx @ ry / np.sqrt(sx * sy)) if share > 1e-9 else 0.0


def zscore(x: np.ndarray) -> np.ndarray:
    """Per-image z-normalisation (the paper's depth targets); constant maps become zeros."""
    x = np.asarray(x, float)
    s = x.std()
    return (x - x.mean()) / s if s > 0 else np.zeros_like(x)
