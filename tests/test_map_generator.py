"""Generated floors validate and hold what was asked; the Kiva rebuild matches RHCR's counts;
the shipped maps are exactly what their presets generate; renders come out as images."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from fleet.cli import main
from maps import SHIPPED, Cell, CellKind, Heading, StationKind, dump_map, load_map, parse_map
from maps.generator import PRESETS, LayoutError, LayoutSpec, generate_layout, kiva_layout
from maps.loader import layout_text
from shared_data import MOVINGAI

ROOT = Path(__file__).resolve().parents[1]

SPECS = {
    "defaults": LayoutSpec(),
    "two-wide aisles": LayoutSpec(aisle_width=2, block_rows=3, block_columns=3),
    "single-depth blocks": LayoutSpec(block_depth=1, block_length=5, block_rows=6),
    "one-way ring": LayoutSpec(ring_width=2, one_way=True, pick_stations=3, stow_stations=2, queue_length=3),
    "exact size": LayoutSpec(width=57, height=33, block_rows=None, block_columns=None, parking=40, chargers=10),
    "wide ring, no extras": LayoutSpec(ring_width=3, chargers=0, parking=0, packing=0, stow_stations=0),
    "stow only": LayoutSpec(pick_stations=0, stow_stations=2, queue_length=2, pitch=1.2, qr_prefix="WH1-"),
    "two working cells": LayoutSpec(working_cells=2, block_columns=4),
    "two working cells, one-way ring": LayoutSpec(working_cells=2, block_columns=5, ring_width=2, one_way=True,
                                                  pick_stations=3, stow_stations=2, queue_length=3),
    # 20 free cells on the south edge for 3 stations of 6 cells: packed, one wall apart
    "two working cells, packed": LayoutSpec(working_cells=2, width=29, height=20, block_rows=None, block_columns=None,
                                            pick_stations=3, queue_length=2),
}
TWIN = sorted(label for label, spec in SPECS.items() if spec.working_cells == 2)


@pytest.mark.parametrize("label", sorted(SPECS))
def test_generated_floor_validates_and_holds_what_was_asked(label: str) -> None:
    spec = SPECS[label]
    wmap = generate_layout(spec)
    again = parse_map(dump_map(wmap))  # the loader's full validation, from file text
    assert np.array_equal(again.kinds, wmap.kinds) and again.stations == wmap.stations
    assert len(wmap.stations_of(StationKind.PICK)) == spec.pick_stations
    assert len(wmap.stations_of(StationKind.STOW)) == spec.stow_stations
    assert wmap.count(CellKind.CHARGER) == spec.chargers
    assert wmap.count(CellKind.PARKING) == spec.parking
    assert wmap.count(CellKind.PACKING) == spec.packing
    for st in wmap.stations:
        assert len(st.working) == spec.working_cells and [len(q) for q in st.queues] == [spec.queue_length] * spec.working_cells
        dx, dy = st.operator_side.step
        for working in st.working:
            assert not wmap.in_bounds(Cell(working.x + dx, working.y + dy)), f"{st.id}: operator must stand outside the grid"
    if spec.width is not None:
        assert (wmap.width, wmap.height) == (spec.width, spec.height)
    else:
        blocks = spec.block_rows * spec.block_columns
        assert wmap.count(CellKind.STORAGE) == blocks * spec.block_depth * spec.block_length
    # Every shelf has a free (non-storage, traversable) neighbour: a loaded robot can reach it.
    for cell in wmap.cells_of(CellKind.STORAGE):
        assert any(wmap.kind(n) is not CellKind.STORAGE for _, n in wmap.neighbours(cell))
    assert bool(wmap.one_way) == spec.one_way


def test_one_way_ring_runs_counter_clockwise() -> None:
    wmap = generate_layout(SPECS["one-way ring"])
    arrows = layout_text(wmap).splitlines()
    assert set(arrows[1][2:-2]) <= {"<", "."} and "<" in arrows[1]  # north lane runs west
    assert set(arrows[-2][2:-2]) <= {">", "."} and ">" in arrows[-2]  # south lane runs east
    assert {row[1] for row in arrows[2:-2]} <= {"v", "."}  # west lane runs south
    assert {row[-2] for row in arrows[2:-2]} <= {"^", "."}  # east lane runs north


def test_generation_is_deterministic() -> None:
    spec = PRESETS["medium"]
    assert dump_map(generate_layout(spec)) == dump_map(generate_layout(spec))


@pytest.mark.parametrize("name", ["demo", "medium", "large"])
def test_shipped_map_is_what_its_preset_generates(name: str) -> None:
    """The committed file can be regenerated with `fleet map generate --preset NAME`."""
    shipped = load_map(SHIPPED / f"{name}.toml")
    assert dump_map(shipped) == dump_map(generate_layout(PRESETS[name]))


def test_shipped_map_sizes_and_capacities() -> None:
    demo, medium, large = (load_map(SHIPPED / f"{n}.toml") for n in ("demo", "medium", "large"))
    assert (demo.height, demo.width) == (20, 30)
    assert (len(demo.stations_of(StationKind.PICK)), len(demo.stations_of(StationKind.STOW))) == (2, 1)
    assert demo.count(CellKind.PARKING) >= 20
    assert (medium.height, medium.width) == (60, 80)
    assert (len(medium.stations_of(StationKind.PICK)), len(medium.stations_of(StationKind.STOW))) == (6, 2)
    assert medium.count(CellKind.PARKING) >= 150
    assert large.height >= 150 and large.width >= 300
    assert len(large.stations) >= 16 and large.count(CellKind.PARKING) >= 1000


@pytest.mark.parametrize(
    ("spec_changes", "message"),
    [
        ({"block_depth": 3}, "block_depth must be 1 or 2"),
        ({"one_way": True}, "one_way needs ring_width >= 2"),
        ({"pick_stations": 9}, "9 pick stations need 53 cells along the edge"),
        ({"chargers": 80}, "80 chargers need 40 cells per side edge"),
        ({"height": 5, "block_rows": None, "chargers": 0}, "no room for a single block"),
        ({"pick_stations": 0, "stow_stations": 0}, "at least one pick or stow station"),
        ({"queue_length": 0}, "queue_length must be at least 1"),
        ({"packing": 40}, r"40 packing cells do not fit: .* reach the chargers at \(0, 6\)"),
        ({"packing": 40, "chargers": 0}, r"40 packing cells do not fit: .* reach the north ring"),
        ({"working_cells": 3}, "working_cells must be 1 or 2, got 3"),
        ({"counterflow": True}, "counterflow needs one_way"),
        ({"working_cells": 2, "pick_stations": 3}, "3 pick stations need 32 cells along the edge but only 23 are free"),
    ],
)
def test_impossible_parameters_are_refused(spec_changes: dict, message: str) -> None:
    with pytest.raises(LayoutError, match=message):
        generate_layout(replace(LayoutSpec(), **spec_changes))


def test_packing_beyond_the_south_edge_goes_up_the_side_edges_from_the_south_corners() -> None:
    """The medium floor's pick stations leave the south edge room for 8 packing cells; the
    other 16 stand in the side edge columns nearest the stations, each beside a two-way lane
    cell so a loaded robot can turn in from the ring road."""
    wmap = generate_layout(PRESETS["medium"])
    packing = set(wmap.cells_of(CellKind.PACKING))
    south = wmap.height - 1
    corner = south - 1 - PRESETS["medium"].ring_width
    assert len(packing) == PRESETS["medium"].packing == 24
    assert {c for c in packing if c.y == south} == {Cell(x, south) for x in range(69, 77)}
    for x, inward in ((0, 1), (wmap.width - 1, wmap.width - 2)):
        assert {c for c in packing if c.x == x} == {Cell(x, corner - k) for k in range(8)}
        for k in range(8):
            lane = Cell(inward, corner - k)
            assert wmap.traversable(lane) and lane not in wmap.one_way
    assert not packing & set(wmap.cells_of(CellKind.CHARGER))


def test_counterflow_makes_a_two_lane_road_in_front_of_the_pick_stations() -> None:
    """The inner ring lane along the south edge runs west against the eastbound outer lane,
    plain exactly where the outer lane is (crossings, station entries, working cells). On
    the north edge the inner lane borders storage, so it stays two-way: a loaded robot
    reaches those shelves only by turning off it."""
    spec = PRESETS["medium"]
    wmap = generate_layout(spec)
    outer, inner = wmap.height - 2, wmap.height - 1 - spec.ring_width
    for x in range(2, wmap.width - 2):
        east = wmap.one_way.get(Cell(x, outer))
        west = wmap.one_way.get(Cell(x, inner))
        assert (east, west) in ((Heading.EAST, Heading.WEST), (None, None)), x
    assert sum(wmap.one_way.get(Cell(x, inner)) is Heading.WEST for x in range(wmap.width)) >= 30
    assert not any(Cell(x, spec.ring_width) in wmap.one_way for x in range(wmap.width))
    plain = generate_layout(replace(spec, counterflow=False))
    assert not any(Cell(x, inner) in plain.one_way for x in range(wmap.width))


@pytest.mark.parametrize("label", TWIN)
def test_two_working_cells_sit_side_by_side_each_at_the_end_of_its_own_queue(label: str) -> None:
    """The first queue runs along the ring road's direction of travel to the first working
    cell; the second is mirrored, entered from downstream after a robot drove past."""
    wmap = generate_layout(SPECS[label])
    for st in wmap.stations:
        first, second = st.working
        downstream = 1 if st.kind is StationKind.PICK else -1  # east along the south edge, west along the north
        assert second == Cell(first.x + downstream, first.y), f"{st.id}: the working cells are not side by side"
        for working, queue, towards in zip(st.working, st.queues, (downstream, -downstream)):
            # a straight line along the edge, entry first, ending next to its own working cell
            assert [c.y for c in queue] == [working.y] * len(queue)
            assert [c.x for c in (*queue, working)] == [queue[0].x + towards * k for k in range(len(queue) + 1)]
            assert wmap.kind(queue[0]) is CellKind.QUEUE and wmap.kind(working) is CellKind.WORKING
            inward = Cell(queue[0].x, queue[0].y + (-1 if st.kind is StationKind.PICK else 1))
            assert wmap.traversable(inward) and inward not in wmap.one_way  # a robot turns in from a two-way cell
            outward = Cell(working.x, inward.y)
            # a robot leaving crosses to the inner lane: sent along a one-way lane it queued
            # behind robots turning into the mirrored queue, which waited for it (gridlock)
            assert wmap.traversable(outward) and outward not in wmap.one_way
    # the stations do not touch: no cell of one is next to a cell of another
    owner = {cell: st.id for st in wmap.stations for cell in st.cells}
    for cell, station_id in owner.items():
        for _, neighbour in wmap.neighbours(cell):
            assert owner.get(neighbour, station_id) == station_id, f"{station_id} touches {owner[neighbour]} at {cell}"


def test_generate_command_takes_working_cells(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "twin.toml"
    assert main(["map", "generate", "-o", str(out), "--working-cells", "2", "--block-columns", "4"]) == 0
    assert all(len(st.working) == 2 for st in load_map(out).stations)
    capsys.readouterr()
    assert main(["map", "check", str(out)]) == 0
    assert "queues of 4+4" in capsys.readouterr().out


# --- Kiva ---------------------------------------------------------------------------------

def test_kiva_counts_match_rhcr() -> None:
    kiva = kiva_layout()
    wmap = kiva.map
    assert (wmap.height, wmap.width) == (33, 46)
    assert wmap.count(CellKind.BLOCKED) == 240
    assert wmap.count(CellKind.STORAGE) == 480 == len(kiva.endpoints)
    assert wmap.count(CellKind.AISLE) == 606
    homes = {c for k in (CellKind.PARKING, CellKind.WORKING, CellKind.QUEUE) for c in wmap.cells_of(k)}
    assert len(homes) == 192 == len(kiva.homes) and homes == set(kiva.homes)
    assert set(kiva.endpoints) == set(wmap.cells_of(CellKind.STORAGE))


def test_kiva_structure() -> None:
    wmap = kiva_layout().map
    rows = layout_text(wmap).splitlines()
    assert all(set(rows[y]) == {"."} for y in range(0, 33, 4))  # aisle between bands and at the edges
    shelf_rows = [y for y, row in enumerate(rows) if "#" in row]
    assert shelf_rows == [2 + 4 * band for band in range(8)]
    for y in shelf_rows:
        assert rows[y].count("#") == 30 and rows[y][7:39].split(".") == ["#" * 10] * 3
        assert rows[y - 1][7:39] == rows[y + 1][7:39] == ".".join(["S" * 10] * 3)
    home_columns = {c.x for c in kiva_layout().homes}
    assert home_columns == {1, 2, 4, 5, 40, 41, 43, 44}


def test_kiva_files_match_the_layout() -> None:
    kiva = kiva_layout()
    assert dump_map(load_map(SHIPPED / "kiva.toml")) == dump_map(kiva.map)

    def cells(path: Path) -> list[Cell]:
        return [Cell(*map(int, line.split())) for line in path.read_text().splitlines()]

    assert cells(ROOT / "benchmarks/data/kiva-endpoints.txt") == kiva.endpoints
    assert cells(ROOT / "benchmarks/data/kiva-homes.txt") == kiva.homes


# --- the command line -----------------------------------------------------------------------

def test_generate_command_writes_a_checked_map_of_the_asked_size(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, endpoints, homes = tmp_path / "wide.toml", tmp_path / "e.txt", tmp_path / "h.txt"
    argv = ["map", "generate", "-o", str(out), "--name", "wide", "--width", "500", "--height", "140",
            "--pick-stations", "20", "--stow-stations", "10", "--chargers", "200", "--parking", "1000",
            "--ring-width", "2", "--one-way", "--endpoints", str(endpoints), "--homes", str(homes)]
    assert main(argv) == 0
    assert "500 x 140 cells" in capsys.readouterr().out
    assert main(["map", "check", str(out)]) == 0
    wmap = load_map(out)
    assert (wmap.width, wmap.height) == (500, 140)
    assert len(homes.read_text().splitlines()) == 1000
    first = Cell(*map(int, endpoints.read_text().splitlines()[0].split()))
    assert wmap.kind(first) is CellKind.STORAGE


def test_generate_command_refuses_bad_parameters(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "x.toml"
    assert main(["map", "generate", "-o", str(out), "--block-depth", "4"]) == 1
    assert "block_depth must be 1 or 2" in capsys.readouterr().err
    assert main(["map", "generate", "-o", str(out), "--width", "40", "--block-columns", "2"]) == 1
    assert "give --width or --block-columns, not both" in capsys.readouterr().err
    assert main(["map", "generate", "-o", str(out), "--preset", "kiva", "--parking", "3"]) == 1
    assert "kiva floor is fixed" in capsys.readouterr().err
    assert main(["map", "generate", "-o", str(out), "--preset", "huge"]) == 1
    assert "unknown preset 'huge'" in capsys.readouterr().err
    assert not out.exists()


def test_render_command_draws_toml_and_movingai_maps(tmp_path: Path) -> None:
    png = b"\x89PNG\r\n\x1a\n"
    demo = tmp_path / "demo.png"
    assert main(["map", "render", str(SHIPPED / "demo.toml"), "-o", str(demo)]) == 0
    assert demo.read_bytes()[:8] == png and demo.stat().st_size > 20_000
    grid = tmp_path / "grid.png"
    source = MOVINGAI / "warehouse-10-20-10-2-1" / "warehouse-10-20-10-2-1.map"
    assert main(["map", "render", str(source), "-o", str(grid)]) == 0
    assert grid.read_bytes()[:8] == png


def test_render_command_reports_a_bad_map(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.map"
    bad.write_text("type octile\nheight 2\nwidth 2\nmap\n..\n.x\n")
    assert main(["map", "render", str(bad), "-o", str(tmp_path / "bad.png")]) == 1
    assert "unknown MovingAI symbol 'x'" in capsys.readouterr().out
    assert not (tmp_path / "bad.png").exists()


def test_readme_picture_is_small() -> None:
    picture = ROOT / "docs/img/demo-map.png"
    assert picture.read_bytes()[:4] == b"\x89PNG" and picture.stat().st_size < 200_000


def test_generate_command_names_a_changed_floor_after_its_file(tmp_path: Path) -> None:
    out = tmp_path / "two-wide.toml"
    assert main(["map", "generate", "-o", str(out), "--aisle-width", "2"]) == 0
    wmap = load_map(out)
    assert (wmap.name, wmap.description) == ("two-wide", "")
    assert wmap.count(CellKind.PARKING) == PRESETS["demo"].parking
