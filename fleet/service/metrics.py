"""Prometheus metrics of one service, in their own registry so two services in one process
(tests) do not collide."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.robots = Gauge("fleet_robots", "Robots by state", ["state"], registry=r)
        self.planning = Histogram("fleet_cycle_seconds", "Wall time of one control cycle (drain, plan, send)",
                                  buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
                                  registry=r)
        self.messages = Counter("fleet_messages_total", "Messages to and from robots", ["direction"], registry=r)
        self.errors = Counter("fleet_errors_total", "Robot events the fleet rejected, and failed cycles",
                              ["kind"], registry=r)
        self.errands = Counter("fleet_errands_total", "Errands finished", ["outcome"], registry=r)
        self.alarms = Gauge("fleet_alarms_active", "Alarms not yet cleared or acknowledged", registry=r)
        self.lag = Gauge("fleet_loop_lag_seconds", "How far the control loop runs behind wall time", registry=r)
        self.requests = Histogram("fleet_http_request_seconds", "HTTP request latency", ["route"], registry=r,
                                  buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1))
