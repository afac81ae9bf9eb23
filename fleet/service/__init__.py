"""The control-room service: configuration, persistence, auth, HTTP API, live updates and
the runtime that owns the fleet's control loop. `fleet serve` and `fleet demo --console`
start it; docs/service.md describes it."""
