"""How fast VDA 5050 messages are parsed and produced: the per-message cost of the wire.

A master with 1,000 vehicles each sending a state a second parses 1,000 states a second
and more on every node reached; this measures decode (parse + validate) and encode of a
minimal and a full state and order, one core. Prints one JSON object with medians of
`--repeats` runs. Usage:

    .venv/bin/python benchmarks/vda5050_codec.py [--count 20000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from drivers.vda5050.messages import Order, State, decode, encode  # noqa: E402
from vda5050_samples import order_full, order_minimal, state_full, state_minimal  # noqa: E402


def rate(work, count: int) -> float:
    start = time.perf_counter()
    for _ in range(count):
        work()
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    cases = {
        "state_minimal": (State, state_minimal()),
        "state_full": (State, state_full()),
        "order_minimal": (Order, order_minimal()),
        "order_full": (Order, order_full()),
    }
    result: dict[str, object] = {"count": args.count, "repeats": args.repeats, "unit": "messages per second (median)"}
    for name, (kind, message) in cases.items():
        payload = encode(message)
        decodes = [rate(lambda: decode(kind, payload), args.count) for _ in range(args.repeats)]
        encodes = [rate(lambda: encode(message), args.count) for _ in range(args.repeats)]
        result[name] = {
            "bytes": len(payload),
            "decode_per_s": round(statistics.median(decodes)),
            "encode_per_s": round(statistics.median(encodes)),
        }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
