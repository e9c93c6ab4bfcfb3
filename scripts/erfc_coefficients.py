"""Chebyshev coefficients of diffcore's log erfc, computed with mpmath.

For u >= 0 and t = 1 / (1 + u/2) in (0, 1],

    log erfc(u) = log t - u^2 + g(y),   y = 2t - 1 in (-1, 1],

and g is smooth on [-1, 1] (g(-1) = -log(2 sqrt(pi)), the limit u -> inf).
This script prints g's Chebyshev coefficients c_0 .. c_{n-1}, with
g(y) = c_0 + sum_{k >= 1} c_k T_k(y), for ``diffcore/_likelihood.py``.
Every coefficient dropped is below 1e-19 (g's values are of order 1), so the
float64 sum is limited by its own rounding, not by truncation.

    python scripts/erfc_coefficients.py

tests/test_likelihood.py runs :func:`coefficients` and compares.
"""

from __future__ import annotations

import mpmath as mp

NODES = 64  # interpolation nodes; aliasing error below 1e-25
DIGITS = 40
KEEP_ABOVE = 1e-19


def _g(y: mp.mpf) -> mp.mpf:
    t = (1 + y) / 2
    if t == 0:
        return -mp.log(2 * mp.sqrt(mp.pi))
    u = 2 / t - 2
    return mp.log(mp.erfc(u)) - mp.log(t) + u * u


def coefficients() -> list[float]:
    """g's Chebyshev coefficients to the last one above ``KEEP_ABOVE``."""
    with mp.workdps(DIGITS):
        angles = [mp.pi * (k + mp.mpf(1) / 2) / NODES for k in range(NODES)]
        values = [_g(mp.cos(a)) for a in angles]
        found = []
        for j in range(NODES):
            total = mp.fsum(
                v * mp.cos(j * a) for v, a in zip(values, angles, strict=True)
            )
            found.append(float(total * (1 if j == 0 else 2) / NODES))
    last = max(j for j, c in enumerate(found) if abs(c) > KEEP_ABOVE)
    return found[: last + 1]


if __name__ == "__main__":
    print("_ERFC_CHEBYSHEV = (")
    for c in coefficients():
        print(f"    {c!r},")
    print(")")
