"""An emergency stop freezes the warehouse's work, it does not reassign it: robots halt
mid-job (some carrying shelves), keep their jobs, loads and cells, and after the reset the
same robots carry on until every order is picked. Emulated robots in process, the real
scheduler, simulated operators at the ports."""

import time

from fastapi.testclient import TestClient

from fleet.domain.order import OrderStatus
from fleet.service.app import Service
from test_service_api import as_, service_settings, wait_for

OPERATOR = as_("operator")
VIEWER = as_("viewer")


def _jobs(svc) -> dict[str, tuple[str, str | None]]:
    """Robot -> (stage, shelf) of its scheduler job, read on the loop thread."""
    scheduler = svc.runtime.work.scheduler
    return svc.runtime.call(lambda: {r: (j.stage.value, j.task.shelf if j.task else None)
                                     for r, j in scheduler.jobs.items()})


def test_emergency_stop_mid_job_then_reset_and_every_order_is_picked(tmp_path):
    svc = Service(service_settings(tmp_path, robots={"emulated": 6},
                                   warehouse={"simulated_operators": True, "orders_per_hour": 0}))
    svc.runtime.start()
    try:
        with TestClient(svc.app) as client:
            scheduler = svc.runtime.work.scheduler
            totals = svc.runtime.call(lambda: scheduler.inventory.totals())
            skus = sorted(totals, key=lambda s: (-totals[s], s))[:6]
            orders = [{"id": f"E-{i}", "lines": [{"sku": sku, "quantity": 1}]} for i, sku in enumerate(skus)]
            assert client.post("/api/orders/bulk", json=orders, headers=OPERATOR).status_code == 200

            def carrying():
                return [r for r in client.get("/api/robots", headers=VIEWER).json() if r["shelf"]]
            assert wait_for(lambda: len(carrying()) >= 2, timeout=60), "no robot lifted a shelf"
            assert client.post("/api/fleet/emergency-stop", headers=OPERATOR).status_code == 200
            assert wait_for(lambda: all(r["state"] == "error" for r in client.get("/api/robots", headers=VIEWER).json()))
            time.sleep(0.3)  # reports already on their way when the stop came are handled
            frozen = _jobs(svc)
            loaded = {r["id"]: r["shelf"] for r in carrying()}
            cells = {r["id"]: r["cell"] for r in client.get("/api/robots", headers=VIEWER).json()}
            assert any(stage != "charge" for stage, _ in frozen.values()), frozen
            time.sleep(1.0)  # 20 simulated seconds at the test's speed
            # frozen, not reassigned: same jobs, same loads, nobody moved, nothing flagged
            assert _jobs(svc) == frozen
            assert {r["id"]: r["shelf"] for r in carrying()} == loaded
            assert {r["id"]: r["cell"] for r in client.get("/api/robots", headers=VIEWER).json()} == cells
            assert svc.runtime.call(lambda: (set(scheduler.down), dict(scheduler.flagged))) == (set(), {})

            assert client.post("/api/fleet/reset", headers=OPERATOR).status_code == 200

            def all_picked():
                return svc.runtime.call(lambda: all(scheduler.orders[o["id"]].status in
                                                    (OrderStatus.PICKED, OrderStatus.PACKED) for o in orders))
            assert wait_for(all_picked, timeout=90), svc.runtime.call(
                lambda: {o: s.status.value for o, s in scheduler.orders.items()})
            failed, flagged, alarms = svc.runtime.call(
                lambda: (list(scheduler.failed_errands), dict(scheduler.flagged), list(scheduler.alarms)))
            assert failed == [] and flagged == {}, (failed, flagged)
            assert not [m for _, m in alarms if "reassigned" in m or "failed" in m], alarms
    finally:
        svc.close()
