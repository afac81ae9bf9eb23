"""The floor: map format, validation, generators, and the maps we ship."""

from pathlib import Path

from maps.loader import MapError, MapProblem, dump_map, load_map, parse_map
from maps.model import Cell, CellKind, Heading, Station, StationKind, WarehouseMap

#: Folder of the maps shipped with the package (demo, medium, large, ...).
SHIPPED = Path(__file__).parent


def shipped_map(name: str) -> WarehouseMap:
    """One of the maps shipped in maps/, by name (e.g. 'demo')."""
    path = SHIPPED / f"{name}.toml"
    if not path.exists():
        available = sorted(p.stem for p in SHIPPED.glob("*.toml"))
        raise FileNotFoundError(f"no shipped map {name!r}; available: {', '.join(available)}")
    return load_map(path)


__all__ = [
    "Cell", "CellKind", "Heading", "MapError", "MapProblem", "SHIPPED", "Station", "StationKind",
    "WarehouseMap", "dump_map", "load_map", "parse_map", "shipped_map",
]
