"""Property tests: any sequence of puts, takes, moves and batches keeps the stock
invariants (never negative, never over volume or weight, index consistent), conserves
stock, and a rejected change leaves the inventory exactly as it was."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleet.domain import DomainError, Put, Take
from test_domain_inventory import assert_consistent, inventory

LABELS = [f"SH000{s}-L{l}-B{b}" for s in (1, 2) for l in (1, 2) for b in (1, 2)] + ["SH0003-L1-B1", "SH0009-L1-B1"]
SKUS = ["BOOK", "BRICK", "PEN", "GHOST"]
quantities = st.one_of(st.integers(-2, 40), st.integers(1, 12), st.sampled_from([0, 1.5, 2.0, True]))
puts = st.builds(Put, st.sampled_from(LABELS), st.sampled_from(SKUS), quantities)
takes = st.builds(Take, st.sampled_from(LABELS), st.sampled_from(SKUS), quantities)
operations = st.one_of(
    st.tuples(st.just("put"), puts),
    st.tuples(st.just("take"), takes),
    st.tuples(st.just("move"), st.tuples(st.sampled_from(LABELS), st.sampled_from(LABELS),
                                         st.sampled_from(SKUS), quantities)),
    st.tuples(st.just("batch"), st.lists(st.one_of(puts, takes), min_size=1, max_size=5)),
)


def picture(inv):
    return inv.stock_by_bin(), {b.label: (b.used_volume_mm3, b.used_weight_mg) for b in inv.bins()}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(operations, max_size=40))
def test_random_changes_keep_the_invariants_and_conserve_stock(ops):
    inv = inventory()
    expected: dict[str, int] = {}  # what the accepted changes add up to, per SKU
    accepted = 0
    for kind, args in ops:
        before = picture(inv)
        try:
            if kind == "put":
                inv.put(*args)
                changes = [args]
            elif kind == "take":
                inv.take(*args)
                changes = [args]
            elif kind == "move":
                source, target, sku, quantity = args
                inv.move(source, target, sku, quantity)
                changes = []  # a move conserves the total
            else:
                inv.apply(args)
                changes = args
        except DomainError:
            assert picture(inv) == before, f"{kind} {args} failed but changed the stock"
        else:
            accepted += 1
            for change in changes:
                sign = 1 if isinstance(change, Put) else -1
                expected[change.sku] = expected.get(change.sku, 0) + sign * int(change.quantity)
        assert_consistent(inv)
    assert inv.totals() == {sku: qty for sku, qty in expected.items() if qty}


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(LABELS[:8]), st.sampled_from(SKUS[:3]), st.integers(1, 200))
def test_put_succeeds_exactly_when_the_quantity_fits(label, sku, quantity):
    inv = inventory()
    fits = inv.fits(label, sku)
    try:
        inv.put(label, sku, quantity)
    except DomainError:
        assert quantity > fits
        assert inv.stock_by_bin() == {}
    else:
        assert quantity <= fits
        assert inv.fits(label, sku) == fits - quantity
