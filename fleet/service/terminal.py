"""A station terminal worked by a person from the console: pick-to-light and put-to-light.

A person takes a port over (pick start, or the first stow scan); from then on the
simulated operator leaves that port alone. Picking: the lit pair says which bin to take
how many units of which item from and which box to put them in; the person confirms the
shown quantity, or reports a short pick with the units found. Stowing: the person scans
the goods (SKU and quantity must match the lit put), puts them into the lit bin and scans
the bin; when every put is confirmed the port's scale reads the shelf and it leaves.

Every method runs on the runtime's loop thread (`Runtime.call`) and raises NotFound or
OperatorError before changing anything; what a key booked is in the store on return.
"""

from __future__ import annotations

from dataclasses import dataclass

from fleet.scheduler.terminals import PickPresentation, ScanRefused, StowPresentation, StowPut
from fleet.service.runtime import NotFound, OperatorError
from fleet.service.warehouse import Warehouse
from maps.model import StationKind


@dataclass(frozen=True)
class StationView:
    """What a terminal shows, and the stations panel lists (plain data for the API)."""

    id: str
    kind: str
    manned: bool
    queue: tuple[str, ...]  # robots in the port's line, the one being worked first
    shelf: str | None  # the shelf at the working cell, being worked
    robot: str | None
    bins: tuple[str, ...]  # the shelf's bin labels (level and place are in the label), for the light grid
    lit: dict | None  # pick: bin, sku, name, quantity, box, order, order_shelf, slot; stow: bin, sku, quantity, scanned
    done: int
    total: int
    units: int


class Terminals:
    def __init__(self, warehouse: Warehouse) -> None:
        self.warehouse = warehouse
        self.scanned: dict[str, StowPut] = {}  # stow port -> goods the person scanned for the lit put
        self.kinds = {s.id: s.kind for s in warehouse.scheduler.map.stations}
        #: Every station's view as of the last control cycle, for the stations panel: read
        #: from any thread without waiting for the loop (a cycle of 1,000 robots is long).
        self.published: tuple[StationView, ...] = tuple(self.views())
        warehouse.after_cycle.append(self.publish)

    def publish(self) -> None:
        self.published = tuple(self.views())

    # --- reading --------------------------------------------------------------------------
    def view(self, station_id: str) -> StationView:
        self._station(station_id)
        wh = self.warehouse
        p = wh.presentations.get(station_id)
        lit = None
        if isinstance(p, PickPresentation) and p.lit is not None:
            pair = p.lit
            shelf_slot = wh.box_slot(station_id, pair.box.label)
            lit = {"bin": pair.bin_label, "sku": pair.sku, "name": pair.name, "quantity": pair.quantity,
                   "box": pair.box.label, "order": pair.box.order_id,
                   "order_shelf": shelf_slot[0] if shelf_slot else None, "slot": shelf_slot[1] if shelf_slot else None}
        elif isinstance(p, StowPresentation) and p.lit is not None:
            put = p.lit
            lit = {"bin": put.bin_label, "sku": put.sku, "name": wh.inventory.catalogue[put.sku].name,
                   "quantity": put.quantity, "note": put.note_id, "scanned": self.scanned.get(station_id) == put}
        total = len(p.pairs) if isinstance(p, PickPresentation) else len(p.puts) if p is not None else 0
        return StationView(station_id, self.kinds[station_id].value, station_id in wh.manned,
                           tuple(wh.queue(station_id)), p.shelf.id if p else None, p.shelf.robot if p else None,
                           tuple(b.label for b in p.shelf.bins) if p else (), lit, p.done if p else 0, total,
                           p.units if p else 0)

    def views(self) -> list[StationView]:
        return [self.view(s) for s in self.kinds]

    # --- keys -----------------------------------------------------------------------------
    def start_pick(self, station_id: str) -> StationView:
        """The person signs on at a pick port; the shelf may still be on its way."""
        self._station(station_id, StationKind.PICK)
        self.warehouse.manned.add(station_id)
        return self.view(station_id)

    def confirm(self, station_id: str, quantity: int, now: float) -> StationView:
        """The lit quantity was moved from the bin into the box."""
        p = self._pick(station_id)
        if quantity != p.lit.quantity:
            raise OperatorError(f"station {station_id}: the lit pick is {p.lit.quantity} x {p.lit.sku} from bin "
                                f"{p.lit.bin_label}, confirmed {quantity}; report a short pick if the bin holds fewer")
        self.warehouse.confirm_pick(station_id, now)
        self.warehouse.flush()
        return self.view(station_id)

    def short_pick(self, station_id: str, found: int, now: float) -> StationView:
        """The bin held fewer than shown: `found` units were moved, the rest is written off
        the bin and the line re-planned from other shelves."""
        p = self._pick(station_id)
        if not 0 <= found < p.lit.quantity:
            raise OperatorError(f"station {station_id}: a short pick of {p.lit.sku} from bin {p.lit.bin_label} "
                                f"reports 0 to {p.lit.quantity - 1} units found, got {found}")
        self.warehouse.confirm_pick(station_id, now, found)
        self.warehouse.flush()
        return self.view(station_id)

    def scan_item(self, station_id: str, sku: str, quantity: int) -> StationView:
        """The person scanned the goods to stow; they must be the lit put's."""
        p = self._stow(station_id)
        put = p.lit
        if (sku, quantity) != (put.sku, put.quantity):
            raise OperatorError(f"station {station_id}: scanned {quantity} x {sku}, but the lit put is "
                                f"{put.quantity} x {put.sku} into bin {put.bin_label}")
        self.warehouse.manned.add(station_id)
        self.scanned[station_id] = put
        return self.view(station_id)

    def scan_bin(self, station_id: str, label: str, now: float) -> StationView:
        """The goods are in the bin: book them; after the last put the scale reads the
        shelf and it leaves (or stays with an alarm if count or weight are off)."""
        p = self._stow(station_id)
        if self.scanned.get(station_id) != p.lit:
            raise OperatorError(f"station {station_id}: scan the goods ({p.lit.quantity} x {p.lit.sku}) before the bin")
        try:
            self.warehouse.scan_bin(station_id, label, now)
        except ScanRefused as exc:
            raise OperatorError(str(exc)) from None
        del self.scanned[station_id]
        if p.finished:
            self.warehouse.depart_stow(station_id, p.shelf.total_weight_kg, now)  # the port's scale
        self.warehouse.flush()
        return self.view(station_id)

    # --- checks ---------------------------------------------------------------------------
    def _station(self, station_id: str, kind: StationKind | None = None) -> None:
        if station_id not in self.kinds:
            raise NotFound(f"unknown station {station_id!r}")
        if kind is not None and self.kinds[station_id] is not kind:
            raise OperatorError(f"station {station_id} is a {self.kinds[station_id].value} station, "
                            f"this needs a {kind.value} station")

    def _pick(self, station_id: str) -> PickPresentation:
        self._station(station_id, StationKind.PICK)
        if station_id not in self.warehouse.manned:
            raise OperatorError(f"station {station_id}: press start first (a simulated operator works it)")
        p = self.warehouse.presentations.get(station_id)
        if p is None or p.lit is None:
            raise OperatorError(f"station {station_id}: no shelf is being picked from; wait for the next one")
        return p

    def _stow(self, station_id: str) -> StowPresentation:
        self._station(station_id, StationKind.STOW)
        p = self.warehouse.presentations.get(station_id)
        if p is None or p.lit is None:
            raise OperatorError(f"station {station_id}: no shelf is waiting for goods; wait for the next one")
        return p
