"""Stock in bins: capacity by volume and weight, clear errors, atomic changes, queries.

`assert_consistent` recomputes every derived figure (used volume and weight, the
"where is SKU" index, totals, empty shelves) from the bins' contents and the
catalogue; the property tests and the generator tests use it too.
"""

from __future__ import annotations

import numpy as np
import pytest

from fleet.domain import (
    BinCapacityExceeded,
    Catalogue,
    InsufficientStock,
    InvalidQuantity,
    Inventory,
    InventoryShelf,
    OrderShelf,
    Put,
    ShelfHandlingError,
    ShelfSpec,
    Sku,
    Take,
    UnknownBin,
    UnknownShelf,
    UnknownSku,
)
from fleet.domain.sku import MG_PER_KG, MM3_PER_LITRE
from maps.model import Cell

#: bins of exactly 10 L and 20 kg: 100 x 100 mm footprint, 1000 mm per level
TEST_SPEC = ShelfSpec(levels=2, bins_per_level=2, width_mm=200, depth_mm=100, height_mm=2400,
                      clearance_mm=400, level_load_kg=40.0, own_weight_kg=30.0)
SMALL_SPEC = ShelfSpec(shelf_class="small-parts", levels=1, bins_per_level=2, width_mm=200, depth_mm=100,
                       height_mm=1400, clearance_mm=400, level_load_kg=40.0, own_weight_kg=20.0)


def catalogue() -> Catalogue:
    return Catalogue([
        Sku("BOOK", "paperback", 2.0, 1.0),
        Sku("BRICK", "toy brick set", 1.0, 5.0),
        Sku("PEN", "ballpoint pen", 0.1, 0.02, shelf_class="small-parts"),
    ])


def inventory() -> Inventory:
    return Inventory(catalogue(), [
        InventoryShelf.build("SH0001", Cell(1, 1), TEST_SPEC),
        InventoryShelf.build("SH0002", Cell(2, 1), TEST_SPEC),
        InventoryShelf.build("SH0003", Cell(3, 1), SMALL_SPEC),
    ])


def assert_consistent(inv: Inventory) -> None:
    where: dict[str, dict[str, int]] = {}
    totals: dict[str, int] = {}
    for b in inv.bins():
        volume = weight = 0
        for sku, qty in b.contents.items():
            assert isinstance(qty, int) and qty > 0, (b.label, sku, qty)
            item = inv.catalogue[sku]
            volume += qty * item.unit_volume_mm3
            weight += qty * item.unit_weight_mg
            where.setdefault(sku, {})[b.label] = qty
            totals[sku] = totals.get(sku, 0) + qty
        assert b.used_volume_mm3 == volume <= b.volume_mm3, b.label
        assert b.used_weight_mg == weight <= b.weight_mg, b.label
    for sku in inv.catalogue.ids():
        assert inv.where(sku) == where.get(sku, {}), sku
        assert inv.stock(sku) == totals.get(sku, 0), sku
    assert inv.totals() == totals
    for shelf_class in inv.shelf_classes():
        expected = [s.id for s in inv.shelves() if s.shelf_class == shelf_class and all(not b.contents for b in s.bins)]
        assert [s.id for s in inv.empty_shelves(shelf_class)] == expected
    for shelf in inv.shelves():  # the kept per-shelf stock, against one added up from the bins
        assert dict(inv.shelf_stock(shelf.id)) == shelf.stock(), shelf.id


def test_default_shelf_is_960_by_960_by_1600_with_labelled_bins():
    shelf = InventoryShelf.build("SH0012", Cell(4, 2))
    assert len(shelf.bins) == 4 * 3
    assert "SH0012-L2-B3" in [b.label for b in shelf.bins]
    assert shelf.bins[0].label == "SH0012-L1-B1" and shelf.bins[-1].label == "SH0012-L4-B3"
    # the compartments share the frame above the robot's clearance, nothing more
    assert sum(b.volume_mm3 for b in shelf.bins) == 960 * 960 * (1600 - 400)
    assert shelf.cell == shelf.home == Cell(4, 2) and shelf.robot is None and shelf.shelf_class == "standard"


def test_levels_may_have_different_bin_counts():
    shelf = InventoryShelf.build("SH1", Cell(0, 0), ShelfSpec(levels=2, bins_per_level=(2, 4)))
    assert [b.label for b in shelf.bins] == [
        "SH1-L1-B1", "SH1-L1-B2", "SH1-L2-B1", "SH1-L2-B2", "SH1-L2-B3", "SH1-L2-B4"]
    assert shelf.bins[0].volume_mm3 == 2 * shelf.bins[2].volume_mm3
    with pytest.raises(ValueError, match="3 bin counts given for 2 levels"):
        ShelfSpec(levels=2, bins_per_level=(1, 2, 3))
    with pytest.raises(ValueError, match="levels must be an integer >= 1"):
        ShelfSpec(levels=0)


def test_test_bins_hold_ten_litres_and_twenty_kilograms():
    b = inventory().bin("SH0001-L1-B1")
    assert b.capacity_volume_l == 10.0 and b.capacity_weight_kg == 20.0


def test_capacity_by_volume():
    inv = inventory()
    assert inv.fits("SH0001-L1-B1", "BOOK") == 5  # 10 L / 2 L; weight would allow 20
    inv.put("SH0001-L1-B1", "BOOK", 5)
    with pytest.raises(BinCapacityExceeded) as err:
        inv.put("SH0001-L1-B1", "BOOK", 1)
    assert err.value.limit == "volume" and err.value.fits == 0 and err.value.requested == 1
    assert "SH0001-L1-B1" in str(err.value) and "BOOK" in str(err.value) and "volume" in str(err.value)
    assert inv.bin("SH0001-L1-B1").quantity("BOOK") == 5


def test_capacity_by_weight():
    inv = inventory()
    assert inv.fits("SH0001-L1-B1", "BRICK") == 4  # volume would allow 10, 20 kg / 5 kg allows 4
    with pytest.raises(BinCapacityExceeded) as err:
        inv.put("SH0001-L1-B1", "BRICK", 5)
    assert err.value.limit == "weight" and err.value.fits == 4
    message = str(err.value)
    assert "SH0001-L1-B1" in message and "5 x BRICK" in message and "weight" in message and "4 would fit" in message
    assert inv.bin("SH0001-L1-B1").empty
    inv.put("SH0001-L1-B1", "BRICK", 4)
    assert inv.bin("SH0001-L1-B1").free_weight_mg == 0


def test_mixed_bin_is_limited_by_whichever_capacity_runs_out_first():
    inv = inventory()
    inv.put("SH0001-L1-B1", "BOOK", 2)  # 4 L, 2 kg
    assert inv.fits("SH0001-L1-B1", "BRICK") == 3  # 6 L left allows 6, 18 kg left allows 3
    inv.put("SH0001-L1-B1", "BRICK", 3)
    assert inv.fits("SH0001-L1-B1", "BOOK") == 1  # 3 L left, 3 kg left
    assert inv.fits("SH0001-L1-B1", "PEN") == 30  # 3 L / 0.1 L; 3 kg / 0.02 kg = 150
    assert_consistent(inv)


def test_small_units_do_not_lose_a_unit_to_float_rounding():
    inv = Inventory(Catalogue([Sku("CLIP", "clip", 0.1, 0.1)]), [InventoryShelf.build("SH9", Cell(0, 0), TEST_SPEC)])
    inv.put("SH9-L1-B1", "CLIP", 97)
    assert inv.fits("SH9-L1-B1", "CLIP") == 3  # 0.3 L / 0.1 L is 2.999... in floats
    inv.put("SH9-L1-B1", "CLIP", 3)
    assert inv.fits("SH9-L1-B1", "CLIP") == 0


def test_take_more_than_held_names_bin_sku_and_quantities():
    inv = inventory()
    inv.put("SH0001-L2-B2", "BOOK", 2)
    with pytest.raises(InsufficientStock) as err:
        inv.take("SH0001-L2-B2", "BOOK", 3)
    assert str(err.value) == "bin SH0001-L2-B2: cannot take 3 x BOOK, it holds only 2"
    assert (err.value.requested, err.value.available) == (3, 2)
    with pytest.raises(InsufficientStock, match="holds only 0"):
        inv.take("SH0001-L2-B2", "BRICK", 1)
    inv.take("SH0001-L2-B2", "BOOK", 2)
    assert inv.where("BOOK") == {} and inv.bin("SH0001-L2-B2").empty
    assert_consistent(inv)


@pytest.mark.parametrize("quantity", [0, -1, 1.5, 2.0, True, "3", None, float("nan")])
def test_quantity_must_be_a_positive_whole_number(quantity):
    inv = inventory()
    inv.put("SH0001-L1-B1", "BOOK", 1)
    for call in (inv.put, inv.take):
        with pytest.raises(InvalidQuantity, match="positive whole number") as err:
            call("SH0001-L1-B1", "BOOK", quantity)
        assert "SH0001-L1-B1" in str(err.value) and "BOOK" in str(err.value)
    assert inv.stock_by_bin() == {"SH0001-L1-B1": {"BOOK": 1}}


def test_numpy_integers_are_quantities():
    inv = inventory()
    inv.put("SH0001-L1-B1", "BOOK", np.int64(2))
    assert inv.bin("SH0001-L1-B1").quantity("BOOK") == 2
    assert type(inv.bin("SH0001-L1-B1").quantity("BOOK")) is int


def test_unknown_sku_bin_and_shelf():
    inv = inventory()
    with pytest.raises(UnknownSku, match="'GHOST'"):
        inv.put("SH0001-L1-B1", "GHOST", 1)
    with pytest.raises(UnknownBin, match="'SH0001-L9-B9'"):
        inv.put("SH0001-L9-B9", "BOOK", 1)
    with pytest.raises(UnknownBin):
        inv.fits("nope", "BOOK")
    with pytest.raises(UnknownSku):
        inv.where("GHOST")
    with pytest.raises(UnknownShelf, match="'SH9999'"):
        inv.shelf_fits("SH9999", "BOOK")
    with pytest.raises(UnknownBin):
        inv.bin(["unhashable"])  # type: ignore[arg-type]
    assert inv.stock_by_bin() == {}


def test_failed_batch_leaves_nothing_half_applied():
    inv = inventory()
    inv.put("SH0001-L1-B1", "BOOK", 3)
    before = inv.stock_by_bin()
    used = {b.label: (b.used_volume_mm3, b.used_weight_mg) for b in inv.bins()}
    batches = [
        [Put("SH0001-L1-B2", "BOOK", 2), Put("SH0002-L1-B1", "BRICK", 4), Put("SH0001-L1-B2", "BRICK", 4)],
        [Take("SH0001-L1-B1", "BOOK", 3), Put("SH0002-L1-B1", "BOOK", 3), Take("SH0001-L1-B1", "BOOK", 1)],
        [Put("SH0002-L1-B1", "PEN", 1), Put("SH0002-L1-B1", "GHOST", 1)],
        [Put("SH0002-L1-B1", "PEN", 1), Put("SH0002-L1-B1", "PEN", 0)],
        [Take("SH0001-L1-B1", "BOOK", 1), Put("SH0404-L1-B1", "BOOK", 1)],
    ]
    for batch in batches:
        with pytest.raises((BinCapacityExceeded, InsufficientStock, UnknownSku, InvalidQuantity, UnknownBin)):
            inv.apply(batch)
        assert inv.stock_by_bin() == before
        assert {b.label: (b.used_volume_mm3, b.used_weight_mg) for b in inv.bins()} == used
        assert_consistent(inv)


def test_move_is_atomic():
    inv = inventory()
    inv.put("SH0001-L1-B1", "BRICK", 4)
    inv.put("SH0002-L1-B1", "BRICK", 2)
    with pytest.raises(BinCapacityExceeded):
        inv.move("SH0001-L1-B1", "SH0002-L1-B1", "BRICK", 3)  # target takes 2 more by weight
    assert inv.bin("SH0001-L1-B1").quantity("BRICK") == 4 and inv.bin("SH0002-L1-B1").quantity("BRICK") == 2
    inv.move("SH0001-L1-B1", "SH0002-L1-B1", "BRICK", 2)
    assert inv.where("BRICK") == {"SH0001-L1-B1": 2, "SH0002-L1-B1": 4}
    assert inv.stock("BRICK") == 6


def test_a_batch_is_checked_in_order():
    inv = inventory()
    inv.apply([Put("SH0001-L1-B1", "BOOK", 5), Take("SH0001-L1-B1", "BOOK", 5), Put("SH0001-L1-B1", "BRICK", 4)])
    assert inv.stock_by_bin() == {"SH0001-L1-B1": {"BRICK": 4}}
    with pytest.raises(TypeError, match="Put or Take"):
        inv.apply([("SH0001-L1-B1", "BOOK", 1)])  # type: ignore[list-item]


def test_where_free_capacity_and_empty_shelf_queries():
    inv = inventory()
    inv.put("SH0001-L1-B1", "BOOK", 4)
    inv.put("SH0001-L2-B1", "BOOK", 1)
    inv.put("SH0002-L1-B1", "BOOK", 5)
    assert inv.where("BOOK") == {"SH0001-L1-B1": 4, "SH0001-L2-B1": 1, "SH0002-L1-B1": 5}
    assert inv.stock("BOOK") == 10 and inv.stock("BRICK") == 0
    assert inv.totals() == {"BOOK": 10}
    # SH0001: 1 + 4 + 5 + 5 free; SH0002: 0 + 5 + 5 + 5
    assert inv.shelf_fits("SH0001", "BOOK") == 15 and inv.shelf_fits("SH0002", "BOOK") == 15
    assert [s.id for s in inv.shelves_holding("BOOK", 15)] == ["SH0001", "SH0002"]
    inv.put("SH0002-L1-B2", "BRICK", 3)  # 3 L, 15 kg: 7 L left takes 3 books, 5 kg left would take 5
    assert inv.shelf_fits("SH0002", "BOOK") == 13
    assert [s.id for s in inv.shelves_holding("BOOK", 14)] == ["SH0001"]
    assert inv.shelves_holding("BOOK", 16) == []
    assert inv.shelves_holding("PEN", 1) == []  # nobody holds pens yet
    assert inv.empty_shelves("standard") == []
    assert [s.id for s in inv.empty_shelves("small-parts")] == ["SH0003"]
    assert inv.empty_shelves("no-such-class") == []
    with pytest.raises(InvalidQuantity):
        inv.shelves_holding("BOOK", 0)
    inv.take("SH0002-L1-B1", "BOOK", 5)
    inv.take("SH0002-L1-B2", "BRICK", 3)
    assert [s.id for s in inv.empty_shelves("standard")] == ["SH0002"]
    assert_consistent(inv)


def test_total_weight_is_own_weight_plus_contents():
    inv = inventory()
    shelf = inv.shelf("SH0001")
    assert shelf.total_weight_kg == 30.0
    inv.put("SH0001-L1-B1", "BRICK", 4)
    inv.put("SH0001-L2-B2", "BOOK", 3)
    assert shelf.total_weight_kg == pytest.approx(30.0 + 20.0 + 3.0)
    assert shelf.stock() == {"BRICK": 4, "BOOK": 3}


def test_shelf_is_lifted_and_lowered_by_one_robot():
    shelf = inventory().shelf("SH0002")
    shelf.lift("R7")
    assert shelf.carried and shelf.robot == "R7" and not shelf.at_home
    with pytest.raises(ShelfHandlingError, match="already carried by robot R7"):
        shelf.lift("R8")
    shelf.lower(Cell(9, 9))
    assert shelf.cell == Cell(9, 9) and shelf.robot is None and not shelf.at_home
    with pytest.raises(ShelfHandlingError, match="not carried"):
        shelf.lower(Cell(2, 1))


def test_shelves_must_be_unique_and_start_empty():
    inv = inventory()
    with pytest.raises(ValueError, match="already in the inventory"):
        inv.add_shelf(InventoryShelf.build("SH0001", Cell(5, 5), TEST_SPEC))
    with pytest.raises(ValueError, match="shelf id must be a non-empty string without spaces"):
        InventoryShelf.build("SH 1", Cell(5, 5))
    with pytest.raises(TypeError, match="inventory shelves, got OrderShelf 'OS1'"):
        inv.add_shelf(OrderShelf.build("OS1", Cell(5, 5)))
    other = Inventory(catalogue(), [InventoryShelf.build("SH7", Cell(0, 0), TEST_SPEC)])
    other.put("SH7-L1-B1", "BOOK", 1)
    with pytest.raises(ValueError, match="must be empty"):
        inv.add_shelf(other.shelf("SH7"))


def test_sku_units_are_validated():
    with pytest.raises(ValueError, match="unit volume"):
        Sku("X", "x", 0.0, 1.0)
    with pytest.raises(ValueError, match="unit weight"):
        Sku("X", "x", 1.0, -2.0)
    with pytest.raises(ValueError, match="already in the catalogue"):
        Catalogue([Sku("X", "x", 1.0, 1.0), Sku("X", "y", 1.0, 1.0)])
    assert Sku("X", "x", 0.25, 0.5).unit_volume_mm3 == 0.25 * MM3_PER_LITRE
    assert Sku("X", "x", 0.25, 0.5).unit_weight_mg == 0.5 * MG_PER_KG
    assert "BOOK" in catalogue() and "GHOST" not in catalogue() and ["BOOK"] not in catalogue()


def test_index_stays_consistent_over_many_shelves():
    cat = Catalogue([Sku(f"S{i}", f"s{i}", 0.5 + i % 3, 0.2 + i % 5) for i in range(40)])
    inv = Inventory(cat, [InventoryShelf.build(f"SH{i:03d}", Cell(i, 0)) for i in range(50)])
    rng = np.random.default_rng(3)
    labels = [b.label for b in inv.bins()]
    for _ in range(3000):
        label, sku = labels[rng.integers(len(labels))], f"S{rng.integers(40)}"
        held = inv.bin(label).quantity(sku)
        if held and rng.random() < 0.4:
            inv.take(label, sku, int(rng.integers(1, held + 1)))
        elif inv.fits(label, sku):
            inv.put(label, sku, int(rng.integers(1, inv.fits(label, sku) + 1)))
    assert inv.totals()
    assert_consistent(inv)
