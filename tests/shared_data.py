"""Where the reference data the tests read lives: the official VDA 5050 schemas and the
MovingAI benchmark maps, in a `shared/` folder that is not part of this repository.

It sits beside the repository on the development machine (../shared); a clone elsewhere
(CI clones into /tmp) finds it through $FLEET_SHARED, else at the machine's /work/shared.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def shared_dir() -> Path:
    """The first of $FLEET_SHARED, ../shared and /work/shared that exists (the first
    candidate if none does, so a test names the place it looked)."""
    override = os.environ.get("FLEET_SHARED")
    candidates = [Path(override)] if override else [REPO_ROOT.parent / "shared", Path("/work/shared")]
    return next((c for c in candidates if c.is_dir()), candidates[0])


SHARED = shared_dir()
MOVINGAI = SHARED / "benchmarks" / "movingai"
