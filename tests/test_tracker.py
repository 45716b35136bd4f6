"""Following objects through an edit: touching objects stay two, copies and losses show."""

import numpy as np

from probe_core.edits.tracker import expected_objects, faults, objects_kept, pieces, track


def box(y, x, h=6, w=6, size=32):
    m = np.zeros((size, size), bool)
    m[y:y + h, x:x + w] = True
    return m


def test_pieces_are_listed_largest_first_and_specks_dropped():
    mask = box(2, 2, 3, 3) | box(10, 10, 6, 6)
    mask[30, 30] = True  # a one-pixel speck
    found = pieces(mask)
    assert [int(p.sum()) for p in found] == [36, 9]


def test_an_object_moved_against_another_is_still_two_objects():
    others = box(10, 20)
    target = box(10, 14)  # moved right until it touches the other object
    after = target | others  # one connected blob of labelled pixels
    expected = expected_objects(target, others)
    tracked = track(after, expected)
    assert len(tracked) == 2 and tracked[0].sum() == 36 and tracked[1].sum() == 36
    assert objects_kept(tracked, expected)


def test_a_copy_left_behind_is_not_kept():
    others = box(24, 24)
    start, target = box(4, 2), box(4, 14)
    after = start | target | others  # the object drawn at its new place and still at its old
    expected = expected_objects(target, others)
    assert faults(track(after, expected), expected) == ["edited split"]
    assert objects_kept(track(target | others, expected), expected)


def test_an_object_that_vanished_or_left_is_not_kept():
    others = box(24, 24)
    target = box(4, 14)
    expected = expected_objects(target, others)
    assert faults(track(target, expected), expected) == ["other gone"]
    assert faults(track(others, expected), expected) == ["edited gone"]
    slid = target | box(24, 19)  # the other object slid 5 px: under half of it is where it was
    assert faults(track(slid, expected), expected) == ["other moved"]


def test_an_other_object_hidden_behind_the_edited_one_is_not_expected():
    others = box(10, 10, 4, 4)
    target = box(8, 8, 8, 8)  # covers the other object wholly
    assert len(expected_objects(target, others)) == 1
