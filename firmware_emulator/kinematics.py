"""Exact trapezoidal speed profiles, one robot at a time in compiled code.

The world advances in fixed steps, but a robot's speed profile must not depend on the
step: within one step a robot may accelerate, cruise and brake. So each step is split
into phases solved in closed form (constant acceleration within a phase), which makes a
straight run match the textbook trapezoid to rounding error whatever the step length.
"""

from __future__ import annotations

import math

import numba
import numpy as np

_TOL = 1e-9


@numba.njit(cache=True)
def run_step(v: float, stop: float, cap: float, accel: float, decel: float, emergency: float,
             dt: float) -> tuple[float, float]:
    """Distance travelled and final speed after `dt`.

    `stop` is the distance to the point where the robot must stand still (end of its run,
    or the laser's stand-off before an obstacle); `cap` its speed limit now (0 holds it).
    A robot brakes with `decel` when it can; when a stop point appears inside its braking
    distance it brakes harder, up to `emergency`, and overshoots if even that is not enough.
    """
    stop = max(stop, 0.0)
    travelled = 0.0
    left = dt
    need = v * v / (2.0 * stop) if stop > _TOL else math.inf
    if v <= _TOL:
        need = 0.0
    brake = min(need, emergency) if need > decel * (1 + 1e-9) else decel
    for _ in range(5):
        rem = stop - travelled
        if v * v >= 2.0 * brake * rem * (1 - 1e-9) - _TOL:
            # on the braking curve: brake to the stop point, or for the whole step
            t_stop = v / brake
            if t_stop <= left + 1e-9:
                stop_dist = v * v / (2.0 * brake)
                ds = rem if abs(stop_dist - rem) < 1e-6 else stop_dist
                travelled += ds
                v = 0.0
                left = 0.0  # standing at its stop point for the rest of the step
                break
            ds, nv, t = v * left - 0.5 * brake * left * left, v - brake * left, left
        elif v > cap + _TOL:
            # slowing to a lower cap (pause, slow-down, loaded speed)
            tb = min((v - cap) / decel, left)
            ds, nv, t = v * tb - 0.5 * decel * tb * tb, v - decel * tb, tb
        elif v < cap - _TOL:
            # accelerating until the cap or the braking curve, whichever comes first
            peak = math.sqrt(max((2.0 * accel * brake * rem + brake * v * v) / (accel + brake), 0.0))
            target = min(cap, peak)
            ta = min(max((target - v) / accel, 0.0), left)
            ds, nv, t = v * ta + 0.5 * accel * ta * ta, target if ta < left else v + accel * ta, ta
        else:
            # cruising until the braking curve
            to_curve = (rem - v * v / (2.0 * brake)) / v if v > _TOL else math.inf
            tc = min(max(to_curve, 0.0), left)
            ds, nv, t = v * tc, v, tc
        travelled += ds
        v = max(nv, 0.0)
        left -= t
        if not left > _TOL:
            break
    return travelled, v


@numba.njit(cache=True)
def _run_steps(v, stop, cap, accel, decel, emergency, dt):  # type: ignore[no-untyped-def]
    travelled = np.empty(len(v))
    speed = np.empty(len(v))
    for i in range(len(v)):
        travelled[i], speed[i] = run_step(v[i], stop[i], cap[i], accel[i], decel[i], emergency[i], dt)
    return travelled, speed


def speed_step(
    v: np.ndarray,
    stop: np.ndarray,
    cap: np.ndarray,
    accel: np.ndarray,
    decel: np.ndarray,
    emergency: np.ndarray,
    dt: float,
) -> tuple[np.ndarray, np.ndarray]:
    """run_step for arrays of robots: distances travelled and final speeds."""
    args = [np.ascontiguousarray(a, dtype=float) for a in np.broadcast_arrays(v, stop, cap, accel, decel, emergency)]
    return _run_steps(*args, float(dt))
