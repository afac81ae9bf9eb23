"""The map format: malformed files are rejected with the right message at the right place;
the shipped maps load, round-trip, and map QR codes, cells and positions consistently."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fleet.cli import main
from maps import SHIPPED, Cell, CellKind, MapError, StationKind, dump_map, load_map, parse_map, shipped_map

TINY = Path(__file__).parent / "data" / "tiny.toml"

# Line numbers below refer to this text: layout rows y = 0..5 are lines 4..9, the first
# [[stations]] table starts on line 12 and the second on line 19.
BASE = """\
name = "t"
pitch = 1.0
layout = '''
#########
#P.....C#
#.SS.SS.#
#.......#
#QQW..QW#
#########
'''

[[stations]]
id = "pick-1"
kind = "pick"
working = [3, 4]
queue = [[1, 4], [2, 4]]
operator_side = "south"

[[stations]]
id = "stow-1"
kind = "stow"
working = [7, 4]
queue = [[6, 4]]
operator_side = "south"
"""


def edit(*pairs: str, text: str = BASE) -> str:
    """`text` (BASE) with each (old, new) replacement applied exactly once."""
    for old, new in zip(pairs[::2], pairs[1::2]):
        assert text.count(old) == 1, f"{old!r} must occur once in the text"
        text = text.replace(old, new)
    return text


def problems_of(text: str) -> list:
    with pytest.raises(MapError) as caught:
        parse_map(text, source="bad.toml")
    return caught.value.problems


MALFORMED = {
    "unknown symbol": (edit("#.......#\n#QQ", "#...x...#\n#QQ"), "unknown symbol 'x'", 7, 5),
    "ragged row": (edit("#.......#\n#QQ", "#......#\n#QQ"), "ragged row: 8 cells, but the first row has 9", 7, 9),
    "duplicate qr id": (
        BASE + '\n[[qr_overrides]]\ncell = [2, 1]\nid = "001001"\n',
        "duplicate QR id '001001': also used by cell (1, 1)", 5, 3,
    ),
    "queue not a path to the working cell": (
        edit("queue = [[1, 4], [2, 4]]", "queue = [[2, 4], [1, 4]]"),
        "station 'pick-1': queue is not a connected path ending at the working cell: (1, 4) is not next to (3, 4)", 12, 1,
    ),
    "storage unreachable by a loaded robot": (
        edit("#P.....C#\n#.SS.SS.#\n#.......#", "#P.SSS.C#\n#..SSS..#\n#..SSS..#"),
        "storage cell (4, 2) cannot be reached from any station by a loaded robot", 6, 5,
    ),
    "charger unreachable": (
        edit("#P.....C#\n#.SS.SS.#", "#P....#C#\n#.SS.SS##"), "charger cell (7, 1) is unreachable from the stations", 5, 8,
    ),
    "parking unreachable": (
        edit("#P.....C#\n#.SS.SS.#", "#P#....C#\n##SS.SS.#"), "parking cell (1, 1) is unreachable from the stations", 5, 2,
    ),
    "no stations": (
        edit("#QQW..QW#", "#.......#").split("[[stations]]")[0], "the map has no stations", 1, 1,
    ),
    "bad toml": (edit("pitch = 1.0", "pitch = = 1.0"), "not valid TOML", 2, 9),
    "missing layout": (
        "name = \"t\"\npitch = 1.0\n\n[[stations]]\nid = \"a\"\n", "missing or empty 'layout'", 1, 1,
    ),
    "station kind invalid": (
        edit('kind = "pick"', 'kind = "picking"'), "station 'pick-1': 'kind' must be 'pick' or 'stow', got 'picking'", 12, 1,
    ),
    "working cell with no station": (
        edit("#QQW..QW#", "#QQW...W#").split("\n[[stations]]\nid = \"stow-1\"")[0],
        "'W' cell (7, 4) belongs to no station", 8, 8,
    ),
    "one-way arrow into a wall": (
        edit("#.......#\n#QQ", "#<......#\n#QQ"),
        "one-way arrow at (1, 3) points west into a blocked cell or off the map", 7, 2,
    ),
    "negative pitch": (edit("pitch = 1.0", "pitch = -1.5"), "'pitch' must be a positive number of metres, got -1.5", 2, 1),
    "duplicate station id": (edit('id = "stow-1"', 'id = "pick-1"'), "station 'pick-1': duplicate station id", 19, 1),
    "working cell is not a W cell": (
        edit("working = [7, 4]", "working = [5, 4]"), "station 'stow-1': working cell (5, 4) is aisle, not a 'W' cell", 19, 1,
    ),
    "cell outside the layout": (
        edit("working = [3, 4]", "working = [30, 4]"), "station 'pick-1': 'working': cell (30, 4) is outside the 9 x 6 layout", 12, 1,
    ),
    "operator side invalid": (
        edit('operator_side = "south"\n\n', 'operator_side = "up"\n\n'),
        "station 'pick-1': 'operator_side': unknown heading 'up'", 12, 1,
    ),
    "unknown station key": (
        edit('operator_side = "south"\n\n', 'operator_side = "south"\nworkng = [1, 1]\n\n'),
        "station 'pick-1': unknown key(s) ['workng']", 12, 1,
    ),
    "description not a string": (edit("pitch = 1.0", "pitch = 1.0\ndescription = 3"), "'description' must be a string", 3, 1),
    "unknown key": (edit("pitch = 1.0", "pitch = 1.0\ncolour = 'red'"), "unknown key 'colour'", 3, 1),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_map_is_rejected_with_message_and_place(case: str) -> None:
    text, message, line, column = MALFORMED[case]
    problems = problems_of(text)
    matching = [p for p in problems if message in p.message]
    assert matching, f"no problem says {message!r}; got {[str(p) for p in problems]}"
    assert (matching[0].line, matching[0].column) == (line, column), str(matching[0])
    assert str(matching[0]).startswith(f"bad.toml:{line}:{column}: ")


def test_all_problems_are_reported_at_once() -> None:
    text = edit("pitch = 1.0", "pitch = 0", "#.......#\n#QQ", "#..?....#\n#QQ", 'kind = "stow"', 'kind = "put"')
    messages = [p.message for p in problems_of(text)]
    assert any("'pitch' must be a positive" in m for m in messages)
    assert any("unknown symbol '?'" in m for m in messages)
    assert any("'kind' must be 'pick' or 'stow'" in m for m in messages)


def test_missing_file_is_a_map_error() -> None:
    with pytest.raises(MapError, match="cannot read map file"):
        load_map("/nonexistent/floor.toml")


def test_base_example_is_valid() -> None:
    wmap = parse_map(BASE)
    assert (wmap.width, wmap.height) == (9, 6)
    assert [s.id for s in wmap.stations_of(StationKind.PICK)] == ["pick-1"]


def test_station_header_may_carry_a_comment() -> None:
    text = edit('[[stations]]\nid = "stow-1"', '[[ stations ]]  # inbound\nid = "stow-1"', 'kind = "stow"', 'kind = "put"')
    problem = next(p for p in problems_of(text) if "'kind' must be" in p.message)
    assert problem.line == 19


def test_crlf_line_endings_load_like_lf() -> None:
    assert np.array_equal(parse_map(BASE.replace("\n", "\r\n")).kinds, parse_map(BASE).kinds)


@pytest.mark.parametrize("name", ["demo", "medium", "large", "kiva"])
def test_shipped_maps_load(name: str) -> None:
    wmap = shipped_map(name)
    assert wmap.name == name
    assert wmap.stations
    assert wmap.count(CellKind.STORAGE) > 0


def test_unknown_shipped_map_names_the_available_ones() -> None:
    with pytest.raises(FileNotFoundError, match="available: .*demo"):
        shipped_map("nowhere")


@pytest.mark.parametrize("path", [TINY, SHIPPED / "demo.toml", SHIPPED / "medium.toml"])
def test_dump_then_parse_round_trips(path: Path) -> None:
    wmap = load_map(path)
    again = parse_map(dump_map(wmap))
    assert np.array_equal(again.kinds, wmap.kinds)
    assert again.stations == wmap.stations
    assert again.one_way == wmap.one_way
    assert (again.name, again.pitch, again.qr_prefix, again.description) == (wmap.name, wmap.pitch, wmap.qr_prefix, wmap.description)
    assert dump_map(again) == dump_map(wmap)


def test_round_trip_keeps_qr_overrides_and_prefix() -> None:
    text = edit('pitch = 1.0', 'pitch = 1.25\nqr_prefix = "A-"') + '\n[[qr_overrides]]\ncell = [2, 3]\nid = "DOCK"\n'
    wmap = parse_map(text)
    again = parse_map(dump_map(wmap))
    assert again.qr_overrides == {Cell(2, 3): "DOCK"}
    assert again.qr_id(Cell(2, 3)) == "DOCK"
    assert again.qr_id(Cell(1, 1)) == "A-001001"


@pytest.mark.parametrize("name", ["demo", "kiva"])
def test_qr_cell_and_position_agree(name: str) -> None:
    wmap = shipped_map(name)
    for cell in wmap.cells():
        if not wmap.traversable(cell):
            with pytest.raises(KeyError):
                wmap.qr_id(cell)
            continue
        assert wmap.cell_of_qr(wmap.qr_id(cell)) == cell
        x, y = wmap.position(cell)
        assert wmap.cell_at(x, y) == cell
        assert wmap.cell_at(x + 0.4 * wmap.pitch, y - 0.4 * wmap.pitch) == cell
    # Row 0 is the north edge: the largest metric y; x grows with the column.
    assert wmap.position(Cell(0, 0)) == (0.0, (wmap.height - 1) * wmap.pitch)
    assert wmap.position(Cell(3, wmap.height - 1)) == (3 * wmap.pitch, 0.0)


def test_default_qr_id_is_prefix_then_padded_x_then_y() -> None:
    wmap = load_map(SHIPPED / "large.toml")  # 300 columns: still three digits
    assert wmap.qr_id(Cell(5, 7)) == "005007"
    assert wmap.kind(Cell(299, 75)) is CellKind.CHARGER
    assert wmap.cell_of_qr("299075") == Cell(299, 75)
    with pytest.raises(KeyError, match="not on map"):
        wmap.cell_of_qr("nope")


def test_one_way_cells_only_leave_along_their_arrow() -> None:
    wmap = shipped_map("medium")
    cell, heading = next(iter(wmap.one_way.items()))
    assert [h for h, _ in wmap.neighbours(cell)] == [heading]


def test_check_command_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["map", "check", str(TINY)]) == 0
    assert "tiny: 9 x 6 cells" in capsys.readouterr().out
    assert main(["map", "check", "--json", str(SHIPPED / "demo.toml")]) == 0
    assert json.loads(capsys.readouterr().out)["cells"]["storage"] == 160
    bad = tmp_path / "bad.toml"
    bad.write_text(MALFORMED["one-way arrow into a wall"][0])
    assert main(["map", "check", str(bad)]) == 1
    out = capsys.readouterr().out
    assert f"{bad}:7:2: one-way arrow at (1, 3) points west" in out
    assert "1 problem(s)" in out


# --- a station with two working cells -------------------------------------------------------
# Like BASE: layout rows y = 0..5 are lines 4..9, pick-1's table starts on line 12. Its
# working cells (3, 4) and (4, 4) sit side by side; the first queue comes from the west,
# the second from the east.
TWIN = """\
name = "twin"
pitch = 1.0
layout = '''
###########
#P.......C#
#.SS.SS...#
#.........#
#QQWWQQ.QW#
###########
'''

[[stations]]
id = "pick-1"
kind = "pick"
working = [[3, 4], [4, 4]]
queue = [[[1, 4], [2, 4]], [[6, 4], [5, 4]]]
operator_side = "south"

[[stations]]
id = "stow-1"
kind = "stow"
working = [9, 4]
queue = [[8, 4]]
operator_side = "south"
"""


def test_a_station_with_two_working_cells_parses_and_round_trips() -> None:
    wmap = parse_map(TWIN)
    pick = wmap.station("pick-1")
    assert pick.working == (Cell(3, 4), Cell(4, 4))
    assert pick.queues == ((Cell(1, 4), Cell(2, 4)), (Cell(6, 4), Cell(5, 4)))
    assert set(pick.cells) == {Cell(x, 4) for x in range(1, 7)}
    assert wmap.station("stow-1").working == (Cell(9, 4),) and wmap.station("stow-1").queues == ((Cell(8, 4),),)
    assert wmap.summary()["stations"][0] == {"id": "pick-1", "kind": "pick", "working": [[3, 4], [4, 4]],
                                             "queue_lengths": [2, 2]}
    text = dump_map(wmap)
    # two working cells are written in the nested form, one in the plain form
    assert "working = [[3, 4], [4, 4]]\nqueue = [[[1, 4], [2, 4]], [[6, 4], [5, 4]]]\n" in text
    assert "working = [9, 4]\nqueue = [[8, 4]]\n" in text
    again = parse_map(text)
    assert again.stations == wmap.stations and np.array_equal(again.kinds, wmap.kinds)
    assert dump_map(again) == text


TWIN_MALFORMED = {
    "one queue for two working cells": (
        edit("queue = [[[1, 4], [2, 4]], [[6, 4], [5, 4]]]", "queue = [[[1, 4], [2, 4]]]", text=TWIN),
        "station 'pick-1': with 2 working cells 'queue' must be a list of 2 queues (one list of cells per working cell)",
    ),
    "three queues for two working cells": (
        edit("queue = [[[1, 4], [2, 4]], [[6, 4], [5, 4]]]", "queue = [[[1, 4]], [[2, 4]], [[6, 4], [5, 4]]]",
             text=TWIN),
        "station 'pick-1': with 2 working cells 'queue' must be a list of 2 queues",
    ),
    "one flat queue for two working cells": (
        edit("queue = [[[1, 4], [2, 4]], [[6, 4], [5, 4]]]", "queue = [[1, 4], [2, 4]]", text=TWIN),
        "station 'pick-1': with 2 working cells 'queue' must be a list of 2 queues (one list of cells per working cell)",
    ),
    "no queue for two working cells": (
        edit("queue = [[[1, 4], [2, 4]], [[6, 4], [5, 4]]]\n", "", text=TWIN),
        "station 'pick-1': with 2 working cells 'queue' must be a list of 2 queues",
    ),
    "second queue does not end next to its working cell": (
        edit("[[6, 4], [5, 4]]]", "[[5, 4], [6, 4]]]", text=TWIN),
        "station 'pick-1': queue is not a connected path ending at the working cell: (6, 4) is not next to (4, 4)",
    ),
    "bad cell in the second queue": (
        edit("[[6, 4], [5, 4]]]", "[[6, 4], [5, 40]]]", text=TWIN),
        "station 'pick-1': 'queue' #2: cell (5, 40) is outside the 11 x 6 layout",
    ),
    "not a cell in the second queue": (
        edit("[[6, 4], [5, 4]]]", "[[6, 4], [5]]]", text=TWIN),
        "station 'pick-1': 'queue' #2: expected a cell as [x, y] (two integers), got [5]",
    ),
    "bad second working cell": (
        edit("working = [[3, 4], [4, 4]]", "working = [[3, 4], [4, -1]]", text=TWIN),
        "station 'pick-1': 'working' #2: cell (4, -1) is outside the 11 x 6 layout",
    ),
    "second working cell is not a W cell": (
        edit("working = [[3, 4], [4, 4]]", "working = [[3, 4], [7, 4]]", text=TWIN),
        "station 'pick-1': working cell (7, 4) is aisle, not a 'W' cell",
    ),
}


@pytest.mark.parametrize("case", sorted(TWIN_MALFORMED))
def test_two_working_cells_malformed_are_rejected_naming_station_and_working_cell(case: str) -> None:
    text, message = TWIN_MALFORMED[case]
    problems = problems_of(text)
    matching = [p for p in problems if message in p.message]
    assert matching, f"no problem says {message!r}; got {[str(p) for p in problems]}"
    assert (matching[0].line, matching[0].column) == (12, 1), str(matching[0])  # pick-1's [[stations]] line
