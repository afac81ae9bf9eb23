"""Exact trapezoidal speed profiles, integrated for many robots at once.

The world advances in fixed steps, but a robot's speed profile must not depend on the
step: within one step a robot may accelerate, cruise and brake. So each step is split
into phases solved in closed form (constant acceleration within a phase), which makes a
straight run match the textbook trapezoid to rounding error whatever the step length.
"""

from __future__ import annotations

import numpy as np

_TOL = 1e-9


def speed_step(
    v: np.ndarray,
    stop: np.ndarray,
    cap: np.ndarray,
    accel: np.ndarray,
    decel: np.ndarray,
    emergency: np.ndarray,
    dt: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Distance travelled and final speed after `dt` for each robot.

    `stop` is the distance to the point where the robot must stand still (end of its run,
    or the laser's stand-off before an obstacle); `cap` its speed limit now (0 holds it).
    A robot brakes with `decel` when it can; when a stop point appears inside its braking
    distance it brakes harder, up to `emergency`, and overshoots if even that is not enough.
    """
    v = v.astype(float, copy=True)
    stop = np.maximum(stop, 0.0)
    travelled = np.zeros_like(v)
    left = np.full_like(v, dt)
    need = np.divide(v * v, 2.0 * stop, out=np.full_like(v, np.inf), where=stop > _TOL)
    need = np.where(v <= _TOL, 0.0, need)
    brake = np.where(need > decel * (1 + 1e-9), np.minimum(need, emergency), decel)
    for _ in range(5):
        rem = stop - travelled
        on_curve = v * v >= 2.0 * brake * rem * (1 - 1e-9) - _TOL
        over = ~on_curve & (v > cap + _TOL)
        under = ~on_curve & (v < cap - _TOL)
        cruise = ~on_curve & ~over & ~under

        t = np.zeros_like(v)
        ds = np.zeros_like(v)
        nv = v.copy()

        # braking to the stop point
        t_stop = v / brake
        done = on_curve & (t_stop <= left + 1e-9)
        stop_dist = v * v / (2.0 * brake)
        stop_dist = np.where(np.abs(stop_dist - rem) < 1e-6, rem, stop_dist)
        partial = on_curve & ~done
        t = np.where(done, t_stop, t)
        ds = np.where(done, stop_dist, ds)
        nv = np.where(done, 0.0, nv)
        tp = left
        ds = np.where(partial, v * tp - 0.5 * brake * tp * tp, ds)
        nv = np.where(partial, v - brake * tp, nv)
        t = np.where(partial, tp, t)

        # slowing to a lower cap (pause, slow-down, loaded speed)
        tb = np.minimum((v - cap) / decel, left)
        ds = np.where(over, v * tb - 0.5 * decel * tb * tb, ds)
        nv = np.where(over, v - decel * tb, nv)
        t = np.where(over, tb, t)

        # accelerating until the cap or the braking curve, whichever comes first
        peak = np.sqrt(np.maximum((2.0 * accel * brake * rem + brake * v * v) / (accel + brake), 0.0))
        target = np.minimum(cap, peak)
        ta = np.minimum(np.maximum((target - v) / accel, 0.0), left)
        ds = np.where(under, v * ta + 0.5 * accel * ta * ta, ds)
        nv = np.where(under, np.where(ta < left, target, v + accel * ta), nv)
        t = np.where(under, ta, t)

        # cruising until the braking curve
        to_curve = np.divide(rem - v * v / (2.0 * brake), v, out=np.full_like(v, np.inf), where=v > _TOL)
        tc = np.minimum(np.maximum(to_curve, 0.0), left)
        ds = np.where(cruise, v * tc, ds)
        t = np.where(cruise, tc, t)

        travelled += ds
        v = np.maximum(nv, 0.0)
        left = np.where(done, 0.0, left - t)  # standing at its stop point for the rest of the step
        if not np.any(left > _TOL):
            break
    return travelled, v
