"""Procedural 3D scenes: sample a spec from a seed, ray-cast it, return labels and a caption.

    >>> scene = render_scene(sample_scene(7), size=64)
    >>> scene.image.shape, scene.depth.shape, scene.mask.shape, scene.caption
    ((64, 64, 3), (64, 64), (64, 64), 'a large red sphere and a small blue box on a gray checkered floor')

Numpy only. The world is y-up; the floor is the plane y = 0; the camera sits at (0, height, 0)
looking along +z, pitched down. Depth is the z-distance along the camera's viewing axis,
with the sky set to `FAR`. The salient mask is every object pixel (all objects are salient).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from .raycast import INTERSECTORS

FAR = 20.0  # depth given to sky pixels (scene units)

SHAPES = ("sphere", "box", "cylinder")
OBJECT_COLOURS = {
    "red": (0.85, 0.12, 0.10),
    "green": (0.15, 0.70, 0.18),
    "blue": (0.12, 0.25, 0.90),
    "yellow": (0.95, 0.85, 0.10),
    "purple": (0.55, 0.15, 0.75),
    "orange": (0.98, 0.50, 0.05),
    "white": (0.92, 0.92, 0.92),
    "black": (0.08, 0.08, 0.08),
    "cyan": (0.10, 0.80, 0.85),
    "pink": (0.98, 0.50, 0.70),
}
FLOOR_COLOURS = {
    "gray": (0.55, 0.55, 0.55),
    "brown": (0.50, 0.33, 0.18),
    "green": (0.30, 0.55, 0.25),
    "blue": (0.30, 0.40, 0.65),
    "beige": (0.80, 0.72, 0.55),
}
FLOOR_PATTERNS = ("checkered", "striped", "plain")
SIZES = {"small": (0.28, 0.38), "large": (0.50, 0.65)}  # object half-size range, scene units
MIN_GAP = 0.15  # scene units kept free between two objects' footprints


@dataclass
class SceneObject:
    shape: str  # one of SHAPES
    colour: str  # key of OBJECT_COLOURS
    size: str  # "small" | "large"
    radius: float  # half-size: sphere radius, box half-edge, cylinder radius
    x: float  # floor position (lateral)
    z: float  # floor position (forward)
    yaw: float = 0.0  # box rotation about the vertical axis, radians
    height: float = 0.0  # cylinder height (2 * radius * factor); unused otherwise
    rgb: tuple[float, float, float] | None = None  # albedo instead of its colour's (varied scenes)


@dataclass
class SceneSpec:
    seed: int
    objects: list[SceneObject]
    floor_colour: str
    floor_pattern: str
    floor_scale: float  # tile / stripe width
    floor_angle: float  # pattern rotation, radians
    camera_height: float
    camera_pitch: float  # radians, positive looks down
    fov: float  # vertical field of view, radians
    light_azimuth: float
    light_elevation: float
    sky_tint: tuple[float, float, float] = (0.55, 0.75, 0.95)
    ambient: float = 0.35  # light on every surface, shadowed or not
    light_strength: float = 0.75  # the sun's light on a surface facing it


@dataclass
class RenderedScene:
    spec: SceneSpec
    image: np.ndarray  # (H, W, 3) uint8
    depth: np.ndarray  # (H, W) float32, z-depth, sky = FAR
    mask: np.ndarray  # (H, W) bool, any object
    object_ids: np.ndarray  # (H, W) int8, -1 background, else index into spec.objects
    caption: str = ""
    areas: list[float] = field(default_factory=list)  # pixel fraction per object


def crowds(objects: list[SceneObject], x: float, z: float, radius: float) -> bool:
    """Whether an object of `radius` standing at floor position (x, z) would come within
    MIN_GAP of any of `objects`."""
    return any(np.hypot(x - o.x, z - o.z) < radius + o.radius + MIN_GAP for o in objects)


def sample_scene(seed: int, n_objects: int | None = None) -> SceneSpec:
    """A random scene spec; the same seed always gives the same spec."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 4)) if n_objects is None else n_objects
    cam_h = float(rng.uniform(1.0, 2.0))
    look_dist = float(rng.uniform(3.5, 4.5))
    pitch = float(np.arctan2(cam_h, look_dist) + rng.uniform(-0.05, 0.05))
    fov = float(np.deg2rad(rng.uniform(45, 55)))
    objects: list[SceneObject] = []
    tries = 0
    while len(objects) < n and tries < 200:
        tries += 1
        size = "large" if rng.random() < 0.5 else "small"
        r = float(rng.uniform(*SIZES[size]))
        z = float(rng.uniform(2.6, 5.5))
        half_w = z * np.tan(fov / 2) * 0.75
        x = float(rng.uniform(-half_w, half_w))
        if crowds(objects, x, z, r):
            continue
        shape = SHAPES[int(rng.integers(len(SHAPES)))]
        colour = list(OBJECT_COLOURS)[int(rng.integers(len(OBJECT_COLOURS)))]
        objects.append(SceneObject(
            shape=shape, colour=colour, size=size, radius=r, x=x, z=z,
            yaw=float(rng.uniform(0, np.pi / 2)),
            height=float(2 * r * rng.uniform(0.9, 1.4)),
        ))
    return SceneSpec(
        seed=seed,
        objects=objects,
        floor_colour=list(FLOOR_COLOURS)[int(rng.integers(len(FLOOR_COLOURS)))],
        floor_pattern=FLOOR_PATTERNS[int(rng.integers(len(FLOOR_PATTERNS)))],
        floor_scale=float(rng.uniform(0.5, 0.9)),
        floor_angle=float(rng.uniform(0, np.pi)),
        camera_height=cam_h,
        camera_pitch=pitch,
        fov=fov,
        light_azimuth=float(rng.uniform(-np.pi * 0.8, np.pi * 0.8)),
        light_elevation=float(rng.uniform(np.deg2rad(35), np.deg2rad(70))),
        sky_tint=tuple(float(c) for c in np.clip(
            np.array([0.55, 0.75, 0.95]) + rng.uniform(-0.08, 0.08, 3), 0, 1)),
    )


def vary_scene(spec: SceneSpec) -> SceneSpec:
    """The same scene made harder to label, from its own random stream (the seed's standard
    scene is unchanged): any camera height, pitch and field of view, low or dim light, objects
    of the floor's colour or grey, and an object moved to touch another. Captions still name
    the standard colours; these scenes are for labelers, which do not read captions."""
    rng = np.random.default_rng([spec.seed, 1])
    cam_h = float(rng.uniform(0.5, 3.0))
    pitch = float(np.arctan2(cam_h, rng.uniform(2.5, 6.0)) + rng.uniform(-0.12, 0.12))
    floor = np.array(FLOOR_COLOURS[spec.floor_colour])
    objects = []
    for obj in spec.objects:
        pick = rng.random()
        if pick < 0.45:  # the floor's colour, a little lighter or darker
            rgb = np.clip(floor * rng.uniform(0.8, 1.25) + rng.uniform(-0.05, 0.05, 3), 0, 1)
        elif pick < 0.65:  # grey or white
            rgb = np.full(3, rng.uniform(0.4, 0.95))
        else:
            rgb = None
        objects.append(replace(obj, rgb=None if rgb is None else tuple(float(c) for c in rgb)))
    if len(objects) >= 2 and rng.random() < 0.4:  # the second object beside the first, touching
        a, b = objects[0], objects[1]
        side = 1.0 if rng.random() < 0.5 else -1.0
        objects[1] = replace(b, x=a.x + side * (a.radius + b.radius + 0.02), z=a.z)
    return replace(spec, objects=objects, camera_height=cam_h, camera_pitch=pitch,
                   fov=float(np.deg2rad(rng.uniform(35, 65))),
                   light_elevation=float(np.deg2rad(rng.uniform(10, 85))),
                   ambient=float(rng.uniform(0.15, 0.6)),
                   light_strength=float(rng.uniform(0.4, 1.1)))


# ----------------------------------------------------------------------------- rendering

def _floor_albedo(spec: SceneSpec, px: np.ndarray, pz: np.ndarray) -> np.ndarray:
    """(M,) floor points' x and z -> (M, 3) albedo of the floor's colour and pattern."""
    base = np.array(FLOOR_COLOURS[spec.floor_colour])
    ca, sa = np.cos(spec.floor_angle), np.sin(spec.floor_angle)
    u = (px * ca + pz * sa) / spec.floor_scale
    v = (-px * sa + pz * ca) / spec.floor_scale
    if spec.floor_pattern == "checkered":
        alt = (np.floor(u).astype(int) + np.floor(v).astype(int)) % 2
    elif spec.floor_pattern == "striped":
        alt = np.floor(u).astype(int) % 2
    else:
        return np.broadcast_to(base, (len(px), 3)).copy()
    light, dark = np.clip(base * 1.25, 0, 1), base * 0.6
    # fade the pattern to its mean with distance: a cheap stand-in for mip-mapping that keeps
    # the far floor from aliasing into noise at 64x64
    fade = np.clip(1.0 - (np.hypot(px, pz) - 4.0) / 5.0, 0.0, 1.0)[:, None]
    mean = (light + dark) / 2
    return mean + fade * np.where(alt[:, None] == 1, dark - mean, light - mean)


@dataclass
class _Hits:
    """Where each camera ray first meets the scene; R rays."""
    t: np.ndarray  # (R,) distance along the ray, inf for the sky
    normal: np.ndarray  # (R, 3) surface normal there
    ids: np.ndarray  # (R,) int8 object index, -1 for the floor and the sky
    floor: np.ndarray  # (R,) bool, the floor is nearest
    hit: np.ndarray  # (R,) bool, anything is hit (not the sky)
    point: np.ndarray  # (R, 3) the point hit (the camera's position for the sky)


def _camera_rays(spec: SceneSpec, s: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Origins (s*s, 3), unit directions (s*s, 3) of an s x s camera's rays, and its forward
    axis (3,)."""
    jj, ii = np.meshgrid(np.arange(s), np.arange(s))
    half = np.tan(spec.fov / 2)
    u = ((jj + 0.5) / s * 2 - 1) * half
    v = (1 - (ii + 0.5) / s * 2) * half
    cp, sp = np.cos(spec.camera_pitch), np.sin(spec.camera_pitch)
    forward = np.array([0.0, -sp, cp])
    up = np.array([0.0, cp, sp])
    right = np.array([1.0, 0.0, 0.0])
    d = u.reshape(-1, 1) * right + v.reshape(-1, 1) * up + forward
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    o = np.broadcast_to(np.array([0.0, spec.camera_height, 0.0]), d.shape)
    return o, d, forward


def _nearest_hits(spec: SceneSpec, o: np.ndarray, d: np.ndarray) -> _Hits:
    """The nearest object or floor along each ray (o, d: (R, 3))."""
    t_best = np.full(len(d), np.inf)
    n_best = np.zeros_like(d)
    ids = np.full(len(d), -1, dtype=np.int8)
    for k, obj in enumerate(spec.objects):
        t, n = INTERSECTORS[obj.shape](o, d, obj)
        closer = t < t_best
        t_best[closer] = t[closer]
        n_best[closer] = n[closer]
        ids[closer] = k
    with np.errstate(divide="ignore", invalid="ignore"):
        t_floor = np.where(d[:, 1] < -1e-6, -o[:, 1] / d[:, 1], np.inf)
    floor = (t_floor < t_best) & np.isfinite(t_floor)
    t_best[floor] = t_floor[floor]
    n_best[floor] = np.array([0.0, 1.0, 0.0])
    ids[floor] = -1
    hit = np.isfinite(t_best)
    p = o + d * np.where(hit, t_best, 0)[:, None]
    return _Hits(t_best, n_best, ids, floor, hit, p)


def _shade(spec: SceneSpec, d: np.ndarray, hits: _Hits) -> np.ndarray:
    """(R, 3) linear RGB of each ray (d: (R, 3)): albedo lit by the sun and the ambient light,
    with cast shadows; the sky's gradient where nothing was hit."""
    albedo = np.zeros_like(d)
    for k, obj in enumerate(spec.objects):
        albedo[hits.ids == k] = obj.rgb if obj.rgb is not None else OBJECT_COLOURS[obj.colour]
    albedo[hits.floor] = _floor_albedo(spec, hits.point[hits.floor, 0], hits.point[hits.floor, 2])

    # light + shadows
    ce, se = np.cos(spec.light_elevation), np.sin(spec.light_elevation)
    L = np.array([ce * np.sin(spec.light_azimuth), se, ce * np.cos(spec.light_azimuth)])
    lam = np.clip(hits.normal @ L, 0, 1)
    shadow = np.zeros(len(d), dtype=bool)
    idx = np.nonzero(hits.hit)[0]
    so = hits.point[idx] + hits.normal[idx] * 1e-3
    sd = np.broadcast_to(L, so.shape)
    for obj in spec.objects:
        t, _ = INTERSECTORS[obj.shape](so, sd, obj)
        shadow[idx[np.isfinite(t)]] = True
    shade = spec.ambient + spec.light_strength * lam * (~shadow)
    rgb = albedo * shade[:, None]

    # sky gradient where nothing was hit
    sky = ~hits.hit
    g = np.clip(d[sky, 1], 0, 1)[:, None]
    tint = np.array(spec.sky_tint)
    rgb[sky] = (1 - g) * np.array([0.88, 0.90, 0.95]) + g * tint
    return rgb


def _downsampled_scene(spec: SceneSpec, rgb: np.ndarray, zdepth: np.ndarray, ids: np.ndarray,
                       size: int, supersample: int) -> RenderedScene:
    """The scene at (size, size) from its supersampled rays' (R,) buffers (R = (size *
    supersample)**2): rgb (R, 3), z-depth (R,), object ids (R,)."""
    s = size * supersample

    def down(a):
        return a.reshape(size, supersample, size, supersample, *a.shape[2:]).mean(axis=(1, 3))

    image = down(np.clip(rgb, 0, 1).reshape(s, s, 3))
    depth = down(zdepth.reshape(s, s))
    obj_cov = down((ids >= 0).reshape(s, s).astype(np.float64))
    mask = obj_cov >= 0.5
    # per-object id: majority at full res, then nearest pick of the top-left subsample
    id_full = ids.reshape(s, s)
    object_ids = id_full[::supersample, ::supersample].copy()
    object_ids[~mask] = -1
    object_ids[mask & (object_ids < 0)] = id_full.reshape(size, supersample, size, supersample).max(
        axis=(1, 3))[mask & (object_ids < 0)]
    areas = [float((ids == k).mean()) for k in range(len(spec.objects))]

    scene = RenderedScene(
        spec=spec,
        image=(image * 255 + 0.5).astype(np.uint8),
        depth=depth.astype(np.float32),
        mask=mask,
        object_ids=object_ids.astype(np.int8),
        areas=areas,
    )
    scene.caption = caption_for(spec, areas)
    return scene


def render_scene(spec: SceneSpec, size: int = 64, supersample: int = 2) -> RenderedScene:
    """Ray-cast a spec: RGB, z-depth, object mask, per-object ids, and the caption."""
    o, d, forward = _camera_rays(spec, size * supersample)  # (s*s, 3) camera rays
    hits = _nearest_hits(spec, o, d)
    rgb = _shade(spec, d, hits)
    zdepth = np.where(hits.hit, hits.t * (d @ forward), FAR)
    zdepth = np.minimum(zdepth, FAR)
    return _downsampled_scene(spec, rgb, zdepth, hits.ids, size, supersample)


def caption_for(spec: SceneSpec, areas: list[float]) -> str:
    """Objects listed largest-on-screen first, then the floor.

    Objects that cover no pixel are left out, so the caption names only what is visible."""
    order = sorted(range(len(spec.objects)), key=lambda k: -areas[k])
    parts = [
        f"a {spec.objects[k].size} {spec.objects[k].colour} {spec.objects[k].shape}"
        for k in order if areas[k] > 0
    ]
    floor = f"on a {spec.floor_colour} {spec.floor_pattern} floor"
    if not parts:
        return f"an empty {spec.floor_colour} {spec.floor_pattern} floor"
    return " and ".join(parts) + " " + floor


def largest_object(scene: RenderedScene) -> SceneObject | None:
    """The object covering the most pixels (named first in the caption), or None."""
    if not scene.areas or max(scene.areas) == 0:
        return None
    return scene.spec.objects[int(np.argmax(scene.areas))]


def caption_vocabulary() -> list[str]:
    """Every word any caption can use, sorted."""
    words = {"a", "an", "and", "on", "floor", "empty"}
    words.update(SHAPES, OBJECT_COLOURS, FLOOR_COLOURS, FLOOR_PATTERNS, SIZES)
    return sorted(words)


def scene_captions(seeds) -> list[str]:
    """Each seed's scene caption (rendered small: the caption depends only on the seed)."""
    return [render_scene(sample_scene(int(s)), size=16).caption for s in seeds]


def render_many(seeds, size: int = 64, varied: bool = False):
    """Render a range of seeds into stacked arrays (`varied`: each seed's vary_scene).

    Returns images (N, H, W, 3) uint8, depths (N, H, W) float32, masks (N, H, W) bool,
    and the list of captions."""
    specs = [sample_scene(int(s)) for s in seeds]
    scenes = [render_scene(vary_scene(sp) if varied else sp, size=size) for sp in specs]
    return (
        np.stack([sc.image for sc in scenes]),
        np.stack([sc.depth for sc in scenes]),
        np.stack([sc.mask for sc in scenes]),
        [sc.caption for sc in scenes],
    )


def render_chunk(job: tuple) -> tuple[np.ndarray, list[str]]:
    """Render (seeds, size): images (N, size, size, 3) uint8 and captions. Picklable, so a
    process pool can call it."""
    seeds, size = job
    scenes = [render_scene(sample_scene(int(s)), size=size) for s in seeds]
    return np.stack([s.image for s in scenes]), [s.caption for s in scenes]
