"""MovingAI benchmark grids load with the right size and free cells; malformed files are refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from maps import Cell, CellKind, MapError
from maps.movingai import load_movingai
from shared_data import MOVINGAI

#: (width, height) per /work/shared/benchmarks/README.md.
SIZES = {
    "warehouse-10-20-10-2-1": (161, 63),
    "warehouse-10-20-10-2-2": (170, 84),
    "warehouse-20-40-10-2-1": (321, 123),
    "warehouse-20-40-10-2-2": (340, 164),
}


@pytest.mark.parametrize("name", sorted(SIZES))
def test_benchmark_map_loads_with_its_size_and_free_cells(name: str) -> None:
    path = MOVINGAI / name / f"{name}.map"
    wmap = load_movingai(path)
    assert (wmap.width, wmap.height) == SIZES[name]
    assert wmap.name == name
    rows = path.read_text().splitlines()[4:]
    assert wmap.count(CellKind.AISLE) == sum(row.count(".") for row in rows)
    assert wmap.count(CellKind.AISLE) + wmap.count(CellKind.BLOCKED) == wmap.width * wmap.height
    # Every scenario start and goal is a free cell (x = column, y = row).
    scen = (MOVINGAI / name / f"{name}-random-1.scen").read_text().splitlines()[1:]
    for line in scen:
        fields = line.split("\t")
        start, goal = Cell(int(fields[4]), int(fields[5])), Cell(int(fields[6]), int(fields[7]))
        assert wmap.traversable(start) and wmap.traversable(goal), line


def _problem(tmp_path: Path, text: str) -> MapError:
    path = tmp_path / "bad.map"
    path.write_text(text)
    with pytest.raises(MapError) as caught:
        load_movingai(path)
    return caught.value


@pytest.mark.parametrize(
    ("text", "message", "line", "column"),
    [
        ("type octile\nheight 2\nwidth 3\n...\n...\n", "no 'map' line", 1, 1),
        ("type octile\nwidth 3\nmap\n...\n", "integer 'height' and 'width'", 1, 1),
        ("type octile\nheight two\nwidth 3\nmap\n...\n...\n", "integer 'height' and 'width'", 1, 1),
        ("type octile\nheight -2\nwidth 3\nmap\n", "height and width must be positive, got -2 x 3", 1, 1),
        ("type octile\nheight 3\nwidth 3\nmap\n...\n...\n", "expected 3 rows, found 2", 7, 1),
        ("type octile\nheight 2\nwidth 3\nmap\n...\n..\n", "row has 2 cells, expected 3", 6, 1),
        ("type octile\nheight 2\nwidth 3\nmap\n...\n.?@\n", "unknown MovingAI symbol '?'", 6, 2),
    ],
)
def test_malformed_file_is_refused_with_its_place(tmp_path: Path, text: str, message: str, line: int, column: int) -> None:
    error = _problem(tmp_path, text)
    problem = next(p for p in error.problems if message in p.message)
    assert (problem.line, problem.column) == (line, column)


def test_unreadable_file_is_a_map_error(tmp_path: Path) -> None:
    path = tmp_path / "latin.map"
    path.write_bytes(b"type octile\nheight 1\nwidth 1\nmap\n\xe9\n")
    with pytest.raises(MapError, match="cannot read MovingAI map"):
        load_movingai(path)
    with pytest.raises(MapError, match="cannot read MovingAI map"):
        load_movingai(tmp_path / "missing.map")


def test_small_grid_cells_are_aisle_or_blocked(tmp_path: Path) -> None:
    path = tmp_path / "g.map"
    path.write_text("type octile\nheight 2\nwidth 3\nmap\n.@T\nG.S\n")
    wmap = load_movingai(path)
    assert [wmap.kind(Cell(x, 0)) for x in range(3)] == [CellKind.AISLE, CellKind.BLOCKED, CellKind.BLOCKED]
    assert all(wmap.kind(Cell(x, 1)) is CellKind.AISLE for x in range(3))
