"""Order shelves: mobile racks whose slots hold order boxes instead of stock bins."""

from __future__ import annotations

from dataclasses import dataclass, field

from maps.model import Cell

from fleet.domain.errors import OrderShelfError
from fleet.domain.order_box import OrderBox
from fleet.domain.shelf import Shelf, ShelfSpec, check_shelf_id, slot_label
from fleet.domain.sku import MM3_PER_LITRE, to_mm3

#: An order shelf: same frame as an inventory shelf, fewer and larger compartments.
ORDER = ShelfSpec(shelf_class="order", levels=4, bins_per_level=2, level_load_kg=80.0, own_weight_kg=40.0)


@dataclass(eq=False, kw_only=True)
class OrderShelf(Shelf):
    """`slots` maps a slot label ('OS01-L2-S1') to its box, or None while free;
    `slot_volume_mm3` is how large a box each slot takes."""

    slots: dict[str, OrderBox | None] = field(default_factory=dict)
    slot_volume_mm3: dict[str, int] = field(default_factory=dict)

    @classmethod
    def build(cls, shelf_id: str, home: Cell, spec: ShelfSpec = ORDER) -> "OrderShelf":
        check_shelf_id(shelf_id)
        slots: dict[str, OrderBox | None] = {}
        volumes: dict[str, int] = {}
        for level, count in enumerate(spec.counts(), start=1):
            volume, _ = spec.compartment(level)
            for index in range(1, count + 1):
                label = slot_label(shelf_id, level, index, "S")
                slots[label] = None
                volumes[label] = volume
        return cls(id=shelf_id, home=home, shelf_class=spec.shelf_class, own_weight_kg=spec.own_weight_kg,
                   slots=slots, slot_volume_mm3=volumes)

    def free_slots(self) -> list[str]:
        return [label for label, box in self.slots.items() if box is None]

    def boxes(self) -> list[OrderBox]:
        return [box for box in self.slots.values() if box is not None]

    def slot_of(self, box_label: str) -> str:
        for label, box in self.slots.items():
            if box is not None and box.label == box_label:
                return label
        raise OrderShelfError(f"order shelf {self.id} holds no order box {box_label!r}")

    def place(self, box: OrderBox, slot: str | None = None) -> str:
        """Put a labelled box into `slot`, or the first free slot its size fits; returns the slot."""
        if any(b.label == box.label for b in self.boxes()):
            raise OrderShelfError(f"order shelf {self.id} already holds order box {box.label}")
        size = to_mm3(box.box_type.inner_volume_l)
        if slot is None:
            free = [s for s in self.free_slots() if self.slot_volume_mm3[s] >= size]
            if not free:
                raise OrderShelfError(
                    f"order shelf {self.id} has no free slot for a {box.box_type.name} box "
                    f"({len(self.free_slots())} free of {len(self.slots)})"
                )
            slot = free[0]
        elif slot not in self.slots:
            raise OrderShelfError(f"order shelf {self.id} has no slot {slot!r}")
        elif self.slots[slot] is not None:
            raise OrderShelfError(f"slot {slot} already holds order box {self.slots[slot].label}")
        elif self.slot_volume_mm3[slot] < size:
            raise OrderShelfError(
                f"slot {slot} takes boxes up to {self.slot_volume_mm3[slot] / MM3_PER_LITRE:g} L, "
                f"box {box.label} ({box.box_type.name}) is {box.box_type.inner_volume_l:g} L"
            )
        self.slots[slot] = box
        return slot

    def remove(self, slot: str) -> OrderBox:
        box = self.slots.get(slot)
        if box is None:
            state = "is empty" if slot in self.slots else "does not exist"
            raise OrderShelfError(f"order shelf {self.id}: slot {slot!r} {state}")
        self.slots[slot] = None
        return box

    @property
    def complete(self) -> bool:
        """Ready for the packing area (pick, step 5): it holds boxes and all are complete."""
        boxes = self.boxes()
        return bool(boxes) and all(b.complete for b in boxes)

    @property
    def total_weight_kg(self) -> float:
        return self.own_weight_kg + sum(b.weight_kg for b in self.boxes())
