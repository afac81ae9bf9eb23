"""The whole warehouse in simulated time: inventory conservation, batching against the
first-come-first-served baseline, and the `fleet sim` command."""

import json
from collections import Counter

import pytest

from fleet.cli import main
from fleet.domain.generator import GeneratorConfig
from fleet.scheduler.batching import Batching
from fleet.simulation import SimConfig, Simulation
from scheduler_kit import alcove_map, alcoves

#: A coarse emulator step and control cycle keep these runs to seconds of CPU; the
#: emulator still judges collisions on true geometry at every step.
FAST = dict(order_shelves_per_port=4,  # the small test floors have room for 4 per port
            control_period_s=1.0, physics_dt_s=0.2, warm_up_s=300.0)


def test_inventory_is_conserved_over_a_seeded_run():
    sim = Simulation(alcove_map(8), SimConfig(robots=3, hours=1.0, seed=4, orders_per_hour=100,
                                              inbound_notes_per_hour=12, **FAST),
                     generator=GeneratorConfig(skus=30, inbound_mean_lines=2))
    kpis = sim.run()
    sched = sim.scheduler
    assert kpis["units_picked"] > 100 and kpis["units_stowed"] > 100, kpis
    stowed, picked, written_off = sched.units_stowed, sched.units_picked, sched.written_off
    change = sim.stock_change()
    for sku in set(change) | set(stowed) | set(picked) | set(written_off):
        assert stowed[sku] - picked[sku] - written_off[sku] == change.get(sku, 0), sku
    for bin_ in sim.scenario.inventory.bins():
        assert all(q > 0 for q in bin_.contents.values()), bin_.label
        assert 0 <= bin_.used_volume_mm3 <= bin_.volume_mm3, bin_.label
        assert 0 <= bin_.used_weight_mg <= bin_.weight_mg, bin_.label
        # the bin's bookkeeping agrees with its contents
        catalogue = sim.scenario.catalogue
        assert bin_.used_volume_mm3 == sum(q * catalogue[s].unit_volume_mm3 for s, q in bin_.contents.items())
    # every unit picked is in an order box or went to packing with its order
    boxed = Counter()
    for order_id in sched.picked_at:
        for line in sched.orders[order_id].lines:
            boxed[line.sku] += line.quantity
    assert all(boxed[sku] <= picked[sku] for sku in boxed)
    assert kpis["collisions"] == 0 and kpis["stuck_tasks"] == 0


def _lines_per_presentation(batching: Batching) -> float:
    # orders arrive faster than two ports can pick them, so a backlog builds up to batch from
    sim = Simulation(alcove_map(20), SimConfig(robots=6, hours=0.25, seed=0, orders_per_hour=1000,
                                               inbound_notes_per_hour=0, batching=batching, **FAST),
                     generator=GeneratorConfig(skus=300))
    kpis = sim.run()
    assert kpis["presentations"] >= 20 and kpis["collisions"] == 0
    return kpis["lines_per_presentation"]


def test_batching_serves_more_lines_per_presentation_than_first_come_first_served():
    fcfs = _lines_per_presentation(Batching.FCFS)
    greedy = _lines_per_presentation(Batching.GREEDY)
    assert greedy >= 1.15 * fcfs, (greedy, fcfs)


def test_fleet_sim_prints_one_json_object_and_writes_plots(tmp_path, capsys):
    map_file = tmp_path / "alcoves.toml"
    map_file.write_text(alcoves(8))
    args = ["sim", "--map", str(map_file), "--robots", "2", "--hours", "0.05", "--orders-per-hour", "120",
            "--period", "1.0", "--dt", "0.2", "--json", "--quiet"]
    assert main(args) == 2  # the default put wall of 8 order shelves per port does not fit this floor
    assert "use fewer order shelves per station" in capsys.readouterr().err
    code = main([*args, "--order-shelves", "4", "--plot", str(tmp_path / "plots")])
    assert code == 0
    kpis = json.loads(capsys.readouterr().out)
    for key in ("orders_completed", "order_lines_picked", "units_stowed", "stations", "robot_utilisation",
                "presentations", "lines_per_presentation", "order_cycle_time_mean_s", "order_cycle_time_p95_s",
                "charging_share", "collisions", "laser_stops", "stuck_tasks", "wall_seconds", "simulated_seconds"):
        assert key in kpis
    assert set(kpis["stations"]) == {"pick-1", "pick-2", "stow-1"}
    assert kpis["simulated_seconds"] == pytest.approx(180.0)
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == ["occupancy.png", "robot_states.png",
                                                                      "throughput.png"]


@pytest.mark.parametrize("args, message", [
    (["--robots", "0"], "robots must be an integer >= 1"),
    (["--hours", "-1"], "hours must be > 0"),
])
def test_fleet_sim_refuses_bad_options_with_a_message(tmp_path, capsys, args, message):
    map_file = tmp_path / "alcoves.toml"
    map_file.write_text(alcoves(8))
    base = {"--robots": "2", "--hours": "0.05"}
    base.update(dict(zip(args[::2], args[1::2])))
    argv = ["sim", "--map", str(map_file), "--quiet"] + [x for kv in base.items() for x in kv]
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_fleet_sim_refuses_a_missing_map(tmp_path, capsys):
    assert main(["sim", "--map", str(tmp_path / "nope.toml"), "--robots", "2", "--hours", "1"]) == 2
    assert "nope.toml" in capsys.readouterr().err
