"""Port queues: first come, first served at a station's working cells.

A port has one working cell, or two side by side, each at the end of its own fixed row
of slots (a line): the working cell, then the queue cells from the one next to it back
to the entry. A robot joins the line with the most free slots; the first robot of a line
drives to its working cell, the second to the queue cell next to it, and so on; a robot
beyond the last slot waits where it is and takes the first slot any line frees. When the
robot at a working cell leaves, its line moves up one slot. Keeping this as plain data
(no robots, no clock) lets the rule be tested on its own and lets the scheduler turn
each change into errands.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import maps.model as floor
from maps.model import Cell


@dataclass
class PortQueue:
    """`lines[i]` is working cell i, then the cells where the robots behind it wait, front
    first. `robots` is the order the robots came in, over all lines."""

    station_id: str
    lines: tuple[tuple[Cell, ...], ...]
    robots: list[str] = field(default_factory=list)
    _line: dict[str, int] = field(default_factory=dict)  # robot -> its line; none yet while all slots are taken

    @classmethod
    def of(cls, site: floor.Station) -> "PortQueue":
        # the map lists queue cells from the entry to the cell next to the working cell
        return cls(site.id, tuple((w, *reversed(q)) for w, q in zip(site.working, site.queues)))

    def join(self, robot_id: str) -> Cell | None:
        """Put the robot at the back of the line with the most free slots; returns the
        slot it should drive to, or None if all slots are taken and it has to wait."""
        if robot_id in self.robots:
            raise ValueError(f"robot {robot_id!r} is already in the queue of port {self.station_id}")
        self.robots.append(robot_id)
        self._assign()
        return self.slot_of(robot_id)

    def line_of(self, robot_id: str) -> int | None:
        return self._line.get(robot_id)

    def slot_of(self, robot_id: str) -> Cell | None:
        line = self._line.get(robot_id)
        return None if line is None else self.lines[line][self._members(line).index(robot_id)]

    def on_working_cell(self, robot_id: str, cell: Cell) -> bool:
        """The robot, standing on `cell`, has reached the working cell of its line."""
        return cell == self.slot_of(robot_id) and cell in self.working

    def leave(self, robot_id: str) -> dict[str, Cell]:
        """Take the robot out of its line (normally the one at a working cell). Returns
        the robots that move up and the slot each now drives to."""
        if robot_id not in self.robots:
            raise ValueError(f"robot {robot_id!r} is not in the queue of port {self.station_id}")
        before = {r: self.slot_of(r) for r in self.robots}
        self.robots.remove(robot_id)
        self._line.pop(robot_id, None)
        self._assign()
        return self._moved(before)

    def settle(self, cells: dict[str, Cell]) -> dict[str, Cell]:
        """First come, first served by where the robots are: a robot that stands in a
        slot of its line is served before every robot behind that slot or not yet in the
        line (a line is one cell wide, so it could not let them pass). `cells` is where
        each robot of the queue stands. Returns the robots whose slot changed, with the
        new slot."""
        before = {r: self.slot_of(r) for r in self.robots}
        order = list(self.robots)
        for line, slots in enumerate(self.lines):
            index = {cell: p for p, cell in enumerate(slots)}
            members = self._members(line)
            standing = sorted((r for r in members if cells[r] in index), key=lambda r: index[cells[r]])
            ranked = iter(standing + [r for r in members if r not in standing])
            order = [next(ranked) if self._line.get(r) == line else r for r in order]
        self.robots = order
        return self._moved(before)

    def _assign(self) -> None:
        """Robots waiting beyond every slot take free slots in the order they came, each
        in the line with the most free slots; a line's newcomer queues behind the robots
        already in it, which came up first."""
        for robot_id in [r for r in self.robots if r not in self._line]:
            line = max(range(len(self.lines)), key=lambda i: (self._free(i), -i))
            if self._free(line) == 0:
                return
            self.robots.remove(robot_id)
            self.robots.append(robot_id)
            self._line[robot_id] = line

    def _moved(self, before: dict[str, Cell | None]) -> dict[str, Cell]:
        return {r: slot for r in self.robots if (slot := self.slot_of(r)) != before.get(r) and slot is not None}

    def _members(self, line: int) -> list[str]:
        return [r for r in self.robots if self._line.get(r) == line]

    def _free(self, line: int) -> int:
        return len(self.lines[line]) - len(self._members(line))

    @property
    def working(self) -> tuple[Cell, ...]:
        return tuple(line[0] for line in self.lines)

    @property
    def capacity(self) -> int:
        """Robots the port's slots hold."""
        return sum(len(line) for line in self.lines)

    def __len__(self) -> int:
        return len(self.robots)
