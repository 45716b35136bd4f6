"""Ray intersections with the scene objects' shapes (numpy only).

    >>> t, n = INTERSECTORS["sphere"](origins, directions, obj)   # obj: a scenes.SceneObject

Every intersector takes origins o (N, 3), unit directions d (N, 3) and an object standing on the
floor y = 0 (its x, z, radius, and yaw for a box, height for a cylinder) and returns
t (N,) (inf where missed) and normals n (N, 3).
"""

from __future__ import annotations

import numpy as np


def hit_sphere(o, d, obj):
    c = np.array([obj.x, obj.radius, obj.z])
    oc = o - c
    b = np.einsum("ij,ij->i", oc, d)
    cc = np.einsum("ij,ij->i", oc, oc) - obj.radius**2
    disc = b * b - cc
    t = np.full(len(o), np.inf)
    ok = disc > 0
    sq = np.sqrt(np.where(ok, disc, 0))
    t0 = -b - sq
    t1 = -b + sq
    tt = np.where(t0 > 1e-4, t0, t1)
    ok &= tt > 1e-4
    t[ok] = tt[ok]
    p = o + d * np.where(np.isfinite(t), t, 0)[:, None]
    n = (p - c) / obj.radius
    return t, n


def hit_box(o, d, obj):
    c = np.array([obj.x, obj.radius, obj.z])
    cy, sy = np.cos(obj.yaw), np.sin(obj.yaw)
    rot = np.array([[cy, 0, -sy], [0, 1, 0], [sy, 0, cy]])  # world -> local
    lo = (o - c) @ rot.T
    ld = d @ rot.T
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / np.where(np.abs(ld) < 1e-9, 1e-9, ld)
    t1 = (-obj.radius - lo) * inv
    t2 = (obj.radius - lo) * inv
    tmin = np.minimum(t1, t2)
    tmax = np.maximum(t1, t2)
    t_near = tmin.max(axis=1)
    t_far = tmax.min(axis=1)
    ok = (t_near <= t_far) & (t_far > 1e-4)
    tt = np.where(t_near > 1e-4, t_near, t_far)
    t = np.where(ok, tt, np.inf)
    axis = np.argmax(tmin, axis=1)
    ln = np.zeros_like(lo)
    ln[np.arange(len(o)), axis] = -np.sign(ld[np.arange(len(o)), axis])
    return t, ln @ rot


def hit_cylinder(o, d, obj):
    r, h = obj.radius, obj.height
    ox, oz = o[:, 0] - obj.x, o[:, 2] - obj.z
    a = d[:, 0] ** 2 + d[:, 2] ** 2
    b = ox * d[:, 0] + oz * d[:, 2]
    cc = ox**2 + oz**2 - r * r
    disc = b * b - a * cc
    t = np.full(len(o), np.inf)
    n = np.zeros_like(o)
    ok = (disc > 0) & (a > 1e-12)
    sq = np.sqrt(np.where(ok, disc, 0))
    a_safe = np.where(a > 1e-12, a, 1)
    for tt in ((-b - sq) / a_safe, (-b + sq) / a_safe):
        y = o[:, 1] + tt * d[:, 1]
        good = ok & (tt > 1e-4) & (y >= 0) & (y <= h) & (tt < t)
        t[good] = tt[good]
        n[good] = np.stack([ox + tt * d[:, 0], np.zeros(len(o)), oz + tt * d[:, 2]], 1)[good] / r
    with np.errstate(divide="ignore", invalid="ignore"):
        tc = (h - o[:, 1]) / d[:, 1]
    px, pz = ox + tc * d[:, 0], oz + tc * d[:, 2]
    cap = np.isfinite(tc) & (tc > 1e-4) & (px**2 + pz**2 <= r * r) & (tc < t)
    t[cap] = tc[cap]
    n[cap] = np.array([0.0, 1.0, 0.0])
    return t, n


INTERSECTORS = {"sphere": hit_sphere, "box": hit_box, "cylinder": hit_cylinder}
