"""The seeded generator: determinism, realistic skew, fill, spread and valid stock."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from fleet.domain import GeneratorConfig, generate
from maps import load_map
from maps.model import KIND_CODES, Cell, CellKind, Heading, Station, StationKind, WarehouseMap
from test_domain_inventory import assert_consistent

TINY = load_map(Path(__file__).parent / "data" / "tiny.toml")


def block_map(blocks_x: int = 6, blocks_y: int = 4) -> WarehouseMap:
    """Storage blocks of 2 x 5 cells between one-cell aisles, pick and stow ports at the south edge."""
    width, height = blocks_x * 6 + 1, blocks_y * 3 + 3
    kinds = np.full((height, width), KIND_CODES[CellKind.AISLE], dtype=np.uint8)
    for bx in range(blocks_x):
        for by in range(blocks_y):
            x0, y0 = 1 + bx * 6, 1 + by * 3
            kinds[y0:y0 + 2, x0:x0 + 5] = KIND_CODES[CellKind.STORAGE]
    south = height - 1
    stations = (
        Station("pick-1", StationKind.PICK, (Cell(3, south),), ((Cell(1, south), Cell(2, south)),), Heading.SOUTH),
        Station("stow-1", StationKind.STOW, (Cell(width - 2, south),), ((Cell(width - 3, south),),), Heading.SOUTH),
    )
    for station in stations:
        kinds[station.working[0].y, station.working[0].x] = KIND_CODES[CellKind.WORKING]
        for cell in station.queues[0]:
            kinds[cell.y, cell.x] = KIND_CODES[CellKind.QUEUE]
    return WarehouseMap(name="blocks", width=width, height=height, pitch=1.2, kinds=kinds, stations=stations)


BLOCKS = block_map()
CONFIG = GeneratorConfig(skus=500, orders_per_hour=600.0, duration_s=2 * 3600.0)


@pytest.fixture(scope="module")
def scenario():
    return generate(BLOCKS, seed=7, config=CONFIG)


def picture(s):
    return (
        [(k.id, k.name, k.unit_volume_l, k.unit_weight_kg, k.shelf_class) for k in s.catalogue],
        s.popularity,
        [(sh.id, sh.home, sh.shelf_class) for sh in s.inventory.shelves()],
        s.inventory.stock_by_bin(),
        [(sh.id, sh.home) for sh in s.order_shelves],
        s.orders,
        s.inbound,
    )


def test_same_seed_same_output_other_seed_other_output(scenario):
    assert picture(generate(BLOCKS, seed=7, config=CONFIG)) == picture(scenario)
    other = generate(BLOCKS, seed=8, config=CONFIG)
    assert other.inventory.stock_by_bin() != scenario.inventory.stock_by_bin()
    assert other.orders != scenario.orders


def test_order_rate_does_not_change_catalogue_or_stock(scenario):
    busier = generate(BLOCKS, seed=7, config=GeneratorConfig(skus=500, orders_per_hour=1200.0, duration_s=600.0))
    assert picture(busier)[:5] == picture(scenario)[:5]
    assert busier.orders != scenario.orders[: len(busier.orders)]


def test_customers_are_seeded_fake_and_change_nothing_else(scenario):
    """The orders are what the order stream draws from the seed's third child, as before
    customers existed (so a seeded simulation's figures stay the same); every order has
    a synthetic customer, the same for the same seed."""
    from fleet.domain.generator import order_stream

    order_rng = np.random.default_rng(np.random.SeedSequence(7).spawn(4)[2])
    stream = order_stream(scenario.catalogue, np.array(list(scenario.popularity.values())), order_rng, CONFIG)
    plain = [next(stream) for _ in scenario.orders]
    assert [(o.id, o.created, o.priority, o.cutoff, o.lines) for o in scenario.orders] == \
        [(o.id, o.created, o.priority, o.cutoff, o.lines) for o in plain]
    customers = [o.customer for o in scenario.orders]
    assert all(c is not None and c.name and c.address for c in customers)
    assert all(c.email.endswith("@example.com") for c in customers if c.email)
    assert all(c.phone.startswith("+1 555 01") for c in customers if c.phone)
    assert 0.6 < sum(c.email is not None for c in customers) / len(customers) < 0.95
    assert len({c.name for c in customers}) > 20
    assert customers == [o.customer for o in generate(BLOCKS, seed=7, config=CONFIG).orders]
    assert customers[:50] != [o.customer for o in generate(BLOCKS, seed=8, config=CONFIG).orders][:50]


def test_top_fifth_of_skus_draws_most_order_lines(scenario):
    lines = Counter(line.sku for order in scenario.orders for line in order.lines)
    by_popularity = sorted(scenario.popularity, key=scenario.popularity.get, reverse=True)
    top = set(by_popularity[: len(by_popularity) // 5])
    share = sum(n for sku, n in lines.items() if sku in top) / sum(lines.values())
    assert share > 0.65, share
    # and a long tail: many SKUs are ordered rarely or never in two hours
    assert sum(1 for sku in by_popularity if lines[sku] <= 1) > len(by_popularity) // 3
    assert abs(sum(scenario.popularity.values()) - 1.0) < 1e-9


def test_order_stream_looks_like_e_commerce(scenario):
    orders = scenario.orders
    assert 1080 <= len(orders) <= 1320  # Poisson, 600 an hour for 2 hours (sd about 35)
    created = [o.created for o in orders]
    assert created == sorted(created) and 0 < created[0] and created[-1] <= CONFIG.duration_s
    gaps = np.diff(created)
    assert 0.85 < gaps.std() / gaps.mean() < 1.15  # exponential gaps: coefficient of variation 1
    assert len({o.id for o in orders}) == len(orders)
    line_counts = Counter(len(o.lines) for o in orders)
    assert sum(line_counts[k] for k in (1, 2, 3)) / len(orders) > 0.8
    assert line_counts[1] > line_counts[2] > line_counts[3]
    quantities = [line.quantity for o in orders for line in o.lines]
    assert quantities.count(1) / len(quantities) > 0.75
    assert max(quantities) <= CONFIG.max_quantity
    assert all(line.sku in scenario.catalogue for o in orders for line in o.lines)
    with_cutoff = [o for o in orders if o.cutoff is not None]
    assert 0.2 < len(with_cutoff) / len(orders) < 0.4
    assert all(2 * 3600 <= o.cutoff - o.created <= 8 * 3600 for o in with_cutoff)
    assert {o.priority for o in orders} == {0, 1}


def test_every_storage_cell_holds_one_shelf_and_order_shelves_are_near_the_pick_port(scenario):
    homes = [s.home for s in scenario.inventory.shelves()] + [s.home for s in scenario.order_shelves]
    assert sorted(homes) == sorted(BLOCKS.cells_of(CellKind.STORAGE))
    assert len(scenario.order_shelves) == 1
    assert [s.id for s in scenario.stations] == ["pick-1", "stow-1"]
    port = BLOCKS.station("pick-1").working[0]
    distance = lambda c: abs(c.x - port.x) + abs(c.y - port.y)  # noqa: E731
    assert distance(scenario.order_shelves[0].home) == min(distance(c) for c in homes)


def test_stock_is_valid_and_fills_the_stocked_shelves_to_the_ratio(scenario):
    inv = scenario.inventory
    assert_consistent(inv)
    stocked = [s for s in inv.shelves() if not s.empty]
    used = sum(b.used_volume_mm3 for s in stocked for b in s.bins)
    capacity = sum(b.volume_mm3 for s in stocked for b in s.bins)
    assert CONFIG.fill_ratio - 0.05 <= used / capacity <= CONFIG.fill_ratio + 0.01, used / capacity
    assert all(b.used_volume_mm3 <= CONFIG.bin_fill_cap * b.volume_mm3 or len(b.contents) == 1 for b in inv.bins())
    assert all(len(b.contents) <= CONFIG.max_skus_per_bin for b in inv.bins())
    for shelf_class in ("standard", "small-parts"):
        of_class = [s for s in inv.shelves() if s.shelf_class == shelf_class]
        assert len(inv.empty_shelves(shelf_class)) == round(CONFIG.empty_shelf_share * len(of_class))
    # SKUs sit on shelves of their own class
    for b in inv.bins():
        for sku in b.contents:
            assert scenario.catalogue[sku].shelf_class == inv.shelf(b.shelf_id).shelf_class
    stocked_skus = sum(1 for sku in scenario.catalogue.ids() if inv.stock(sku) > 0)
    assert stocked_skus / len(scenario.catalogue) > 0.95


def test_fast_movers_are_spread_over_several_shelves(scenario):
    inv = scenario.inventory
    by_popularity = sorted(scenario.popularity, key=scenario.popularity.get, reverse=True)

    def shelves_of(sku):
        return len({inv.bin(label).shelf_id for label in inv.where(sku)})

    assert all(shelves_of(sku) >= 3 for sku in by_popularity[:5])
    tail = by_popularity[-100:]
    assert np.mean([shelves_of(sku) for sku in tail]) < 2.0
    # fast movers also hold more stock
    top_volume = np.mean([inv.stock(s) * scenario.catalogue[s].unit_volume_l for s in by_popularity[:20]])
    tail_volume = np.mean([inv.stock(s) * scenario.catalogue[s].unit_volume_l for s in tail])
    assert top_volume > 3 * tail_volume


def test_catalogue_has_realistic_units(scenario):
    volumes = np.array([k.unit_volume_l for k in scenario.catalogue])
    weights = np.array([k.unit_weight_kg for k in scenario.catalogue])
    assert 0.2 < np.median(volumes) < 1.5 and volumes.max() <= 30.0 and volumes.min() > 0
    assert 0.05 < np.median(weights) < 1.0 and weights.max() <= 25.0
    assert len({k.id for k in scenario.catalogue}) == CONFIG.skus


def test_inbound_notes_replenish_by_popularity(scenario):
    notes = scenario.inbound
    assert notes and all(n.lines for n in notes)
    assert all(line.sku in scenario.catalogue for n in notes for line in n.lines)
    out_of_stock = {sku for sku in scenario.catalogue.ids() if scenario.inventory.stock(sku) == 0}
    for note in notes:
        for line in note.lines:
            assert (line.priority == 1) == (line.sku in out_of_stock)


def test_tiny_map_is_stocked_without_breaking_any_rule():
    s = generate(TINY, seed=1, config=GeneratorConfig(skus=40, duration_s=600.0))
    assert len(s.inventory.shelves()) + len(s.order_shelves) == TINY.count(CellKind.STORAGE)
    assert s.inventory.totals()
    assert sorted(s.inventory.shelf_classes()) == ["small-parts", "standard"]
    assert_consistent(s.inventory)


def test_bad_config_names_every_problem():
    with pytest.raises(ValueError) as err:
        GeneratorConfig(skus=0, fill_ratio=1.5, cutoff_after_s=(10.0, 5.0))
    with pytest.raises(ValueError, match="fill_ratio 0.8 cannot exceed bin_fill_cap 0.7"):
        GeneratorConfig(fill_ratio=0.8, bin_fill_cap=0.7)
    message = str(err.value)
    assert "skus must be >= 1" in message and "fill_ratio must be in (0, 1]" in message
    assert "cutoff_after_s must be (low, high)" in message
