"""The independent checker finds every kind of conflict and illegal move it claims to."""

import numpy as np
import pytest

from fleet.traffic.checker import check_paths
from traffic_kit import floor

LINE = floor(
    ".....",
    "..#..",
    ">>>>>",
)


def _paths(*steps):
    return np.array([[list(c) for c in step] for step in steps])


def test_valid_paths_have_no_conflicts():
    paths = _paths([(0, 0), (2, 0)], [(1, 0), (3, 0)], [(1, 1), (4, 0)])
    assert check_paths(LINE, paths).as_dict() == {
        "vertex": 0, "swap": 0, "following": 0, "illegal_moves": 0, "collisions": 0}


def test_vertex_conflict():
    paths = _paths([(0, 0), (2, 0)], [(1, 0), (1, 0)])
    assert check_paths(LINE, paths).vertex == 1


def test_swap_conflict_counted_once():
    paths = _paths([(0, 0), (1, 0)], [(1, 0), (0, 0)])
    found = check_paths(LINE, paths)
    assert found.swap == 1 and found.following == 0


def test_following_is_a_conflict_unless_allowed():
    paths = _paths([(0, 0), (1, 0)], [(1, 0), (2, 0)])
    assert check_paths(LINE, paths).following == 1
    assert check_paths(LINE, paths, following_allowed=True).collisions == 0


def test_illegal_moves_jump_wall_and_one_way():
    assert check_paths(LINE, _paths([(0, 0)], [(2, 0)])).illegal_moves == 1  # jump
    assert check_paths(LINE, _paths([(2, 0)], [(2, 1)])).illegal_moves == 1  # into the wall
    assert check_paths(LINE, _paths([(3, 2)], [(2, 2)])).illegal_moves == 1  # against '>'
    assert check_paths(LINE, _paths([(2, 2)], [(3, 2)])).illegal_moves == 0


def test_rotation_model_forbids_sideways_moves_and_half_turns():
    paths = _paths([(0, 0)], [(1, 0)])
    east, north, west = 0, 1, 2
    assert check_paths(LINE, paths, np.array([[east], [east]])).illegal_moves == 0
    assert check_paths(LINE, paths, np.array([[north], [north]])).illegal_moves == 1
    still = _paths([(0, 0)], [(0, 0)])
    assert check_paths(LINE, still, np.array([[east], [west]])).illegal_moves == 1


def test_bad_shape_is_rejected():
    with pytest.raises(ValueError, match="shape"):
        check_paths(LINE, np.zeros((3, 2)))
