"""The brain: domain model, workflows, batching, assignment, traffic control, service."""
