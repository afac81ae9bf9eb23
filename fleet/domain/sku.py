"""Stock-keeping units and the catalogue that names them.

Capacity arithmetic runs on whole cubic millimetres and milligrams, not on float
litres and kilograms: "how many units fit" is a floor division, and with floats
0.3 L / 0.1 L is 2.999..., which would lose a unit or let one too many in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Iterator

from fleet.domain.errors import UnknownSku

MM3_PER_LITRE = 1_000_000
MG_PER_KG = 1_000_000


def to_mm3(litres: float) -> int:
    return round(litres * MM3_PER_LITRE)


def to_mg(kg: float) -> int:
    return round(kg * MG_PER_KG)


@dataclass(frozen=True, slots=True)
class Sku:
    """One kind of goods. `shelf_class` is the class of shelf it is stored on, which
    gives "an empty shelf of the same class" (stow, step 3) its meaning."""

    id: str
    name: str
    unit_volume_l: float
    unit_weight_kg: float
    shelf_class: str = "standard"
    unit_volume_mm3: int = field(init=False, repr=False, compare=False)
    unit_weight_mg: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.id or not isinstance(self.id, str):
            raise ValueError(f"SKU id must be a non-empty string, got {self.id!r}")
        volume, weight = to_mm3(self.unit_volume_l), to_mg(self.unit_weight_kg)
        if volume <= 0:
            raise ValueError(f"SKU {self.id}: unit volume must be at least 1 mm3 (0.000001 L), got {self.unit_volume_l} L")
        if weight <= 0:
            raise ValueError(f"SKU {self.id}: unit weight must be at least 1 mg, got {self.unit_weight_kg} kg")
        object.__setattr__(self, "unit_volume_mm3", volume)
        object.__setattr__(self, "unit_weight_mg", weight)


class Catalogue:
    """Every SKU the warehouse knows, by id."""

    def __init__(self, skus: Iterable[Sku] = ()) -> None:
        self._skus: dict[str, Sku] = {}
        for sku in skus:
            self.add(sku)

    def add(self, sku: Sku) -> None:
        if sku.id in self._skus:
            raise ValueError(f"SKU {sku.id!r} is already in the catalogue")
        self._skus[sku.id] = sku

    def __getitem__(self, sku_id: str) -> Sku:
        try:
            return self._skus[sku_id]
        except (KeyError, TypeError):
            raise UnknownSku(sku_id) from None

    def __contains__(self, sku_id: object) -> bool:
        return isinstance(sku_id, str) and sku_id in self._skus

    def __iter__(self) -> Iterator[Sku]:
        return iter(self._skus.values())

    def __len__(self) -> int:
        return len(self._skus)

    def ids(self) -> list[str]:
        return list(self._skus)
