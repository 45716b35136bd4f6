import numpy as np
import pytest

from probe_core.world.scenes import (FAR, OBJECT_COLOURS, SHAPES, SceneObject, caption_for,
                               caption_vocabulary, largest_object, render_scene, sample_scene)


def test_same_seed_same_scene_and_pixels():
    a, b = render_scene(sample_scene(123)), render_scene(sample_scene(123))
    assert a.caption == b.caption
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.depth, b.depth)
    c = render_scene(sample_scene(124))
    assert not np.array_equal(a.image, c.image)


def test_output_shapes_and_ranges():
    sc = render_scene(sample_scene(5), size=32)
    assert sc.image.shape == (32, 32, 3) and sc.image.dtype == np.uint8
    assert sc.depth.shape == (32, 32) and sc.depth.dtype == np.float32
    assert sc.mask.shape == (32, 32) and sc.mask.dtype == bool
    assert np.all(sc.depth > 0) and np.all(sc.depth <= FAR)


def _one_sphere_spec(x=0.0, z=3.5, r=0.6):
    spec = sample_scene(0, n_objects=1)
    spec.objects = [SceneObject("sphere", "red", "large", r, x, z)]
    spec.camera_height, spec.camera_pitch = 1.2, 0.0  # level camera at height 1.2
    return spec


def test_mask_and_depth_match_a_known_sphere():
    # a level camera looking along +z at a sphere centred at (0, 0.6, 3.5) radius 0.6
    sc = render_scene(_one_sphere_spec(), size=64)
    rows, cols = np.nonzero(sc.mask)
    assert sc.mask.any() and np.array_equal(sc.mask, sc.object_ids >= 0)
    assert abs(cols.mean() - 31.5) < 1.5  # centred horizontally
    # the nearest object pixel is the sphere's front, about 3.5 - 0.6 away along z
    assert abs(sc.depth[sc.mask].min() - 2.9) < 0.1
    # pixels inside the mask are red, the corners are not object
    r, g, b = sc.image[sc.mask].astype(int).mean(0)
    assert r > g + 40 and r > b + 40
    assert not sc.mask[0, 0] and not sc.mask[-1, -1]


def test_depth_is_larger_just_behind_an_object():
    sc = render_scene(_one_sphere_spec(), size=64)
    checked = 0
    for col in np.nonzero(sc.mask.any(0))[0]:
        top = np.nonzero(sc.mask[:, col])[0].min()
        if top >= 2 and sc.mask[top + 1, col]:
            assert sc.depth[top - 2, col] > sc.depth[top + 1, col]
            checked += 1
    assert checked > 5


def test_sky_is_far_and_floor_is_finite():
    sc = render_scene(_one_sphere_spec(), size=64)
    assert sc.depth[0, 0] == pytest.approx(FAR)  # level camera: the top row is sky
    assert sc.depth[-1, 0] < FAR / 2  # the bottom row is floor, nearby


def test_caption_names_visible_objects_largest_first():
    for seed in range(30):
        sc = render_scene(sample_scene(seed))
        big = largest_object(sc)
        assert sc.caption.startswith(f"a {big.size} {big.colour} {big.shape}")
        assert sc.caption.endswith(f"on a {sc.spec.floor_colour} {sc.spec.floor_pattern} floor")
        assert set(sc.caption.split()) <= set(caption_vocabulary())


def test_caption_leaves_out_hidden_objects():
    spec = _one_sphere_spec()
    spec.objects.append(SceneObject("box", "blue", "small", 0.3, 0.0, 8.0))
    assert caption_for(spec, [0.1, 0.0]) == (
        f"a large red sphere on a {spec.floor_colour} {spec.floor_pattern} floor")


def test_sampler_covers_the_attribute_space():
    specs = [sample_scene(s) for s in range(300)]
    objs = [o for sp in specs for o in sp.objects]
    assert {o.shape for o in objs} == set(SHAPES)
    assert {o.colour for o in objs} == set(OBJECT_COLOURS)
    assert {len(sp.objects) for sp in specs} == {1, 2, 3}


def test_varied_scenes_are_harder_and_leave_the_standard_scene_alone():
    from probe_core.world.scenes import FLOOR_COLOURS, vary_scene

    spec = sample_scene(5)
    assert (spec.ambient, spec.light_strength) == (0.35, 0.75)
    assert all(o.rgb is None for o in spec.objects)
    varied = vary_scene(spec)
    assert varied == vary_scene(sample_scene(5)) and sample_scene(5) == spec
    specs = [vary_scene(sample_scene(s)) for s in range(80)]
    heights = [v.camera_height for v in specs]
    assert min(heights) < 0.9 and max(heights) > 2.2
    assert min(v.ambient for v in specs) < 0.25
    floor_like = [o for v in specs for o in v.objects if o.rgb is not None and np.abs(
        np.array(o.rgb) - np.array(FLOOR_COLOURS[v.floor_colour])).max() < 0.2]
    assert len(floor_like) > 20
    touching = [v for v in specs if len(v.objects) >= 2 and np.isclose(
        abs(v.objects[1].x - v.objects[0].x), v.objects[0].radius + v.objects[1].radius + 0.02)]
    assert touching
    # an object given the floor's albedo is drawn with it
    r = render_scene(varied)
    assert r.image.shape == (64, 64, 3) and r.mask.any() == render_scene(spec).mask.any()
