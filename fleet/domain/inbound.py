"""Inbound (stow) notes: goods announced for stowing into the storage area."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from fleet.domain.errors import check_quantity
from fleet.domain.lifecycle import advance


class InboundStatus(str, Enum):
    OPEN = "open"  # entered, stow tasks not yet all done
    STOWING = "stowing"  # goods are being put away at a stow port
    STOWED = "stowed"
    CANCELLED = "cancelled"


_INBOUND_MOVES = {
    InboundStatus.OPEN: frozenset({InboundStatus.STOWING, InboundStatus.CANCELLED}),
    InboundStatus.STOWING: frozenset({InboundStatus.STOWED}),
}


@dataclass(frozen=True, slots=True)
class InboundLine:
    """`priority`, when given, overrides the note's priority for this line (e.g. a
    SKU that is out of stock and has orders waiting)."""

    sku: str
    quantity: int
    priority: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.sku, str) or not self.sku:
            raise ValueError(f"inbound line needs a SKU id, got {self.sku!r}")
        object.__setattr__(self, "quantity", check_quantity(self.quantity, f"inbound line for {self.sku}"))


@dataclass(eq=True, kw_only=True)
class InboundNote:
    id: str
    lines: tuple[InboundLine, ...]
    created: float
    priority: int = 0
    status: InboundStatus = InboundStatus.OPEN
    updated: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise ValueError(f"inbound note id must be a non-empty string, got {self.id!r}")
        self.lines = tuple(self.lines)
        if not self.lines:
            raise ValueError(f"inbound note {self.id} has no lines")
        if self.updated is None:
            self.updated = self.created

    def line_priority(self, line: InboundLine) -> int:
        return self.priority if line.priority is None else line.priority

    def set_status(self, status: InboundStatus, at: float) -> None:
        self.status = advance(f"inbound note {self.id}", self.status, status, _INBOUND_MOVES)
        self.updated = at
