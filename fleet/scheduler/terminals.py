"""What the operator at a port sees and confirms: pick-to-light and put-to-light.

A presentation is one shelf at one port's working cell. For picking it is a list of
pairs (source bin -> target order box); the lit pair is the first unconfirmed one, and
the confirm key books the move in inventory and in the box. For stowing it is a list
of puts (goods -> bin); a bin scan confirms the lit put, and a scan of any other bin is
refused without touching inventory. Every stock change goes through Inventory, so the
terminal can never book stock that is not there or overfill a bin.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fleet.domain.inventory import Inventory
from fleet.domain.order_box import OrderBox
from fleet.domain.shelf import InventoryShelf

#: How far (kg) the scale at a stow port may read from the planned shelf weight.
WEIGHT_TOLERANCE_KG = 0.5


class ScanRefused(ValueError):
    """A bin scan that does not match the lit bin: nothing was booked."""


@dataclass(frozen=True)
class PickPair:
    bin_label: str
    box: OrderBox
    sku: str
    name: str
    quantity: int


@dataclass(frozen=True)
class ShortPick:
    """The bin held less than booked: `missing` units of the line are still to be found
    on other shelves, and `written_off` units were taken out of the bin's booked stock."""

    box: OrderBox
    sku: str
    missing: int
    written_off: int


@dataclass
class PickPresentation:
    station_id: str
    shelf: InventoryShelf
    pairs: list[PickPair]
    started: float
    done: int = 0
    units: int = 0
    shorts: list[ShortPick] = field(default_factory=list)

    @property
    def lit(self) -> PickPair | None:
        """The pair whose bin and box lights are on."""
        return self.pairs[self.done] if self.done < len(self.pairs) else None

    @property
    def finished(self) -> bool:
        return self.done == len(self.pairs)

    @property
    def lines(self) -> int:
        return len({(p.box.label, p.sku) for p in self.pairs})

    def add_boxes(self, inventory: Inventory, boxes: list[OrderBox]) -> None:
        """Boxes of orders released to the port while this shelf stands there: it serves
        them too, from the units its pairs still to do have not taken."""
        taken: dict[str, int] = {}
        for pair in self.pairs[self.done:]:
            taken[pair.bin_label] = taken.get(pair.bin_label, 0) + pair.quantity
        self.pairs.extend(pick_pairs(inventory, self.shelf, boxes, taken))


def pick_pairs(inventory: Inventory, shelf: InventoryShelf, boxes: list[OrderBox],
               taken: dict[str, int] | None = None) -> list[PickPair]:
    """Every move this shelf can serve for these boxes now: for each missing SKU of each
    box, units from the shelf's bins, fullest bin first, up to what is missing. `taken`
    (bin label -> units) is what pairs not yet done already took from the bins."""
    pairs = []
    taken = dict(taken or {})  # bin label -> units already given to earlier pairs
    for box in boxes:
        for sku in box.required:
            need = box.missing(sku)
            if need <= 0:
                continue
            bins = sorted((b for b in shelf.bins if b.quantity(sku) - taken.get(b.label, 0) > 0),
                          key=lambda b: (-b.quantity(sku), b.label))
            for b in bins:
                qty = min(need, b.quantity(sku) - taken.get(b.label, 0))
                taken[b.label] = taken.get(b.label, 0) + qty
                pairs.append(PickPair(b.label, box, sku, inventory.catalogue[sku].name, qty))
                need -= qty
                if need == 0:
                    break
    return pairs


def confirm_pick(inventory: Inventory, presentation: PickPresentation, quantity: int | None = None) -> ShortPick | None:
    """The operator pressed confirm at the lit box, having moved `quantity` units (the
    quantity shown, unless they say fewer were there). A short pick books what was moved,
    writes the rest of the bin's booked stock of that SKU off (the bin was found holding
    no more) and returns what is still missing, for re-planning."""
    pair = presentation.lit
    if pair is None:
        raise ValueError(f"port {presentation.station_id}: no pick is lit, shelf {presentation.shelf.id} is done")
    if quantity is None:
        quantity = pair.quantity
    if not isinstance(quantity, int) or not 0 <= quantity <= pair.quantity:
        raise ValueError(f"port {presentation.station_id}: confirm {pair.sku} from {pair.bin_label} with 0 to "
                         f"{pair.quantity} units, got {quantity!r}")
    if quantity:
        inventory.take(pair.bin_label, pair.sku, quantity)
        pair.box.put(inventory.catalogue[pair.sku], quantity)
    presentation.done += 1
    presentation.units += quantity
    if quantity == pair.quantity:
        return None
    rest = inventory.bin(pair.bin_label).quantity(pair.sku)
    if rest:
        inventory.take(pair.bin_label, pair.sku, rest)
    short = ShortPick(pair.box, pair.sku, pair.quantity - quantity, rest)
    presentation.shorts.append(short)
    # later pairs from the same bin counted on stock that is not there either
    presentation.pairs[presentation.done:] = [
        p for p in presentation.pairs[presentation.done:] if not (p.bin_label == pair.bin_label and p.sku == pair.sku)
    ]
    return short


@dataclass(frozen=True)
class StowPut:
    bin_label: str
    sku: str
    quantity: int
    note_id: str


@dataclass
class StowPresentation:
    """Goods for one shelf at a stow port. It may leave only when every planned put was
    confirmed and the scale reads the planned weight; `alarm` says why it may not."""

    station_id: str
    shelf: InventoryShelf
    puts: list[StowPut]
    planned_weight_kg: float
    started: float
    done: int = 0
    units: int = 0
    alarm: str = ""

    @property
    def lit(self) -> StowPut | None:
        return self.puts[self.done] if self.done < len(self.puts) else None

    @property
    def planned_units(self) -> int:
        return sum(p.quantity for p in self.puts)

    @property
    def finished(self) -> bool:
        return self.done == len(self.puts)


def plan_puts(inventory: Inventory, shelf: InventoryShelf, sku: str, quantity: int, note_id: str) -> list[StowPut]:
    """Bins for `quantity` units on the shelf: bins already holding the SKU first, then
    the roomiest; raises if the shelf cannot take them all (shelf choice said it could)."""
    item = inventory.catalogue[sku]
    bins = sorted(shelf.bins, key=lambda b: (b.quantity(sku) == 0, -b.fits(item), b.label))
    puts, left = [], quantity
    for b in bins:
        qty = min(left, b.fits(item))
        if qty > 0:
            puts.append(StowPut(b.label, sku, qty, note_id))
            left -= qty
        if left == 0:
            return puts
    raise ValueError(f"shelf {shelf.id} has room for {quantity - left} of {quantity} x {sku}")


def stow_presentation(inventory: Inventory, station_id: str, shelf: InventoryShelf, puts: list[StowPut],
                      now: float) -> StowPresentation:
    added = sum(p.quantity * inventory.catalogue[p.sku].unit_weight_kg for p in puts)
    return StowPresentation(station_id, shelf, list(puts), shelf.total_weight_kg + added, now)


def scan_bin(inventory: Inventory, presentation: StowPresentation, label: str) -> StowPut:
    """The operator put the goods in and scanned a bin label: book them if it is the lit bin."""
    put = presentation.lit
    if put is None:
        raise ScanRefused(f"port {presentation.station_id}: every put on shelf {presentation.shelf.id} is confirmed; "
                          f"scan of {label!r} ignored")
    if label != put.bin_label:
        raise ScanRefused(f"port {presentation.station_id}: scanned bin {label!r}, but the lit bin is "
                          f"{put.bin_label} ({put.quantity} x {put.sku}); nothing was booked, put the goods "
                          f"into {put.bin_label}")
    inventory.put(put.bin_label, put.sku, put.quantity)
    presentation.done += 1
    presentation.units += put.quantity
    return put


def may_depart(presentation: StowPresentation, measured_weight_kg: float,
               tolerance_kg: float = WEIGHT_TOLERANCE_KG) -> bool:
    """Stow, step 6: the shelf leaves only when the confirmed count and the weight both
    match the plan; otherwise it stays and `alarm` tells the operator what is off."""
    problems = []
    confirmed = sum(p.quantity for p in presentation.puts[: presentation.done])
    if confirmed != presentation.planned_units:
        problems.append(f"{confirmed} of {presentation.planned_units} units confirmed")
    if abs(measured_weight_kg - presentation.planned_weight_kg) > tolerance_kg:
        problems.append(f"scale reads {measured_weight_kg:.2f} kg, plan says {presentation.planned_weight_kg:.2f} kg")
    presentation.alarm = (f"shelf {presentation.shelf.id} stays at port {presentation.station_id}: "
                          + "; ".join(problems)) if problems else ""
    return not problems
