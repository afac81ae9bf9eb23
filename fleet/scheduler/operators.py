"""Simulated people at the ports: each works the presented shelf one pick or put at a time.

`fleet sim` has them at every port; the service has them at every port no person has
taken over from the console's terminal view (and nowhere when they are switched off).
An operator takes a random time per pick and per stow (lognormal around the mean), then
acts through the same terminal calls a person's keys and scanner reach.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Container, Protocol

import numpy as np

from fleet.scheduler.terminals import PickPresentation, StowPresentation


@dataclass(frozen=True)
class OperatorTimes:
    seconds_per_pick: float = 6.0  # one pick pair: take from the bin, put in the box, confirm
    seconds_per_unit: float = 1.0  # each unit beyond the first of a pair
    seconds_per_stow: float = 10.0  # one put: goods into the lit bin, scan the bin
    spread: float = 0.3  # sigma of the lognormal operator time


class Terminals(Protocol):
    """What an operator's keys reach: the scheduler itself, or the service's terminal
    desk, which also persists what each key booked."""

    presentations: dict[str, PickPresentation | StowPresentation]

    def confirm_pick(self, station_id: str, now: float) -> object: ...

    def scan_bin(self, station_id: str, label: str, now: float) -> object: ...

    def depart_stow(self, station_id: str, measured_weight_kg: float, now: float) -> bool: ...


class SimulatedOperators:
    def __init__(self, terminals: Terminals, times: OperatorTimes, rng: np.random.Generator) -> None:
        self.terminals = terminals
        self.times = times
        self.rng = rng
        self._next_action: dict[str, float] = {}  # port -> when its operator acts next

    def work(self, now: float, skip: Container[str] = ()) -> None:
        """Every port not in `skip`: start timing a newly presented shelf, or act when due."""
        times = self.times
        presentations = self.terminals.presentations
        for port, p in list(presentations.items()):
            if port in skip:
                continue
            due = self._next_action.get(port)
            if due is None:
                if isinstance(p, PickPresentation):
                    lit = p.lit
                    mean = times.seconds_per_pick + times.seconds_per_unit * (lit.quantity - 1 if lit else 0)
                else:
                    mean = times.seconds_per_stow if p.lit is not None else 1.0
                self._next_action[port] = now + mean * float(self.rng.lognormal(0.0, times.spread))
                continue
            if now < due:
                continue
            del self._next_action[port]
            if isinstance(p, PickPresentation):
                self.terminals.confirm_pick(port, now)
            elif p.lit is not None:
                self.terminals.scan_bin(port, p.lit.bin_label, now)
            else:
                self.terminals.depart_stow(port, p.shelf.total_weight_kg, now)
        for port in list(self._next_action):
            if port not in presentations or port in skip:
                del self._next_action[port]
