"""Stations at run time. The map owns a station's geometry (working cell, queue cells,
operator side); this is what changes while the warehouse runs."""

from __future__ import annotations

from dataclasses import dataclass

import maps.model as floor
from maps.model import StationKind


@dataclass(eq=False, kw_only=True)
class Station:
    """`map_station` is the id of the map's station this one works; `orders_per_round`
    is how many orders a pick port takes per round (pick, step 1)."""

    id: str
    kind: StationKind
    map_station: str
    open: bool = True
    orders_per_round: int = 8

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise ValueError(f"station id must be a non-empty string, got {self.id!r}")
        self.kind = StationKind(self.kind)
        if not isinstance(self.orders_per_round, int) or self.orders_per_round < 1:
            raise ValueError(f"station {self.id}: orders_per_round must be an integer >= 1, got {self.orders_per_round!r}")

    @classmethod
    def from_map(cls, site: floor.Station, orders_per_round: int = 8) -> "Station":
        return cls(id=site.id, kind=site.kind, map_station=site.id, orders_per_round=orders_per_round)

    def site(self, warehouse_map: floor.WarehouseMap) -> floor.Station:
        """The map's station, checked to be of the same kind."""
        site = warehouse_map.station(self.map_station)
        if site.kind != self.kind:
            raise ValueError(
                f"station {self.id} is a {self.kind.value} station but map station {site.id} "
                f"of {warehouse_map.name!r} is a {site.kind.value} station"
            )
        return site


def stations_of(warehouse_map: floor.WarehouseMap, orders_per_round: int = 8) -> list[Station]:
    """One run-time station per station on the map, with the map's ids."""
    return [Station.from_map(site, orders_per_round) for site in warehouse_map.stations]
