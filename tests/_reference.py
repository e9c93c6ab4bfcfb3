"""Schedule tables worked out with mpmath at 50 significant digits.

Each function mirrors the definition of a schedule (not diffcore's numerics):
alpha_bar is the plain product of (1 - beta), 1 - alpha_bar its plain
difference, all at 50 digits, so float64 rounding cannot hide there.
"""

from __future__ import annotations

from functools import cache

import mpmath as mp

mp.mp.dps = 50


def linear_betas(T: int, start: str = "1e-4", end: str = "0.02") -> list[mp.mpf]:
    b0, b1 = mp.mpf(start), mp.mpf(end)
    if T == 1:
        return [b0]
    return [b0 + (b1 - b0) * i / (T - 1) for i in range(T)]


def scaled_linear_betas(
    T: int, start: str = "0.00085", end: str = "0.012"
) -> list[mp.mpf]:
    r0, r1 = mp.sqrt(mp.mpf(start)), mp.sqrt(mp.mpf(end))
    if T == 1:
        return [r0**2]
    return [(r0 + (r1 - r0) * i / (T - 1)) ** 2 for i in range(T)]


def cosine_betas(T: int, s: str = "0.008", max_beta: str = "0.999") -> list[mp.mpf]:
    s_, cap = mp.mpf(s), mp.mpf(max_beta)

    def f(u: mp.mpf) -> mp.mpf:
        return mp.cos((u + s_) / (1 + s_) * mp.pi / 2) ** 2

    return [min(1 - f(mp.mpf(i + 1) / T) / f(mp.mpf(i) / T), cap) for i in range(T)]


BETAS = {
    "linear": linear_betas,
    "scaled_linear": scaled_linear_betas,
    "cosine": cosine_betas,
}


@cache
def tables(kind: str, T: int) -> dict[str, list[mp.mpf]]:
    """Every public Schedule table for schedule ``kind`` with T steps."""
    betas = BETAS[kind](T)
    ab, prod = [], mp.mpf(1)
    for b in betas:
        prod *= 1 - b
        ab.append(prod)
    ab_prev = [mp.mpf(1), *ab[:-1]]
    one_minus = [1 - a for a in ab]
    one_minus_prev = [1 - a for a in ab_prev]
    post_var = [
        b * omp / om
        for b, omp, om in zip(betas, one_minus_prev, one_minus, strict=True)
    ]
    first = post_var[1] if T > 1 else betas[0]
    return {
        "betas": betas,
        "alphas": [1 - b for b in betas],
        "alphas_cumprod": ab,
        "alphas_cumprod_prev": ab_prev,
        "sqrt_alphas_cumprod": [mp.sqrt(a) for a in ab],
        "sqrt_one_minus_alphas_cumprod": [mp.sqrt(o) for o in one_minus],
        "snr": [a / o for a, o in zip(ab, one_minus, strict=True)],
        "log_snr": [mp.log(a / o) for a, o in zip(ab, one_minus, strict=True)],
        "sigmas": [mp.sqrt(o / a) for a, o in zip(ab, one_minus, strict=True)],
        "posterior_variance": post_var,
        "posterior_log_variance_clipped": [
            mp.log(first),
            *(mp.log(v) for v in post_var[1:]),
        ],
        "posterior_mean_coef_x0": [
            b * mp.sqrt(ap) / o
            for b, ap, o in zip(betas, ab_prev, one_minus, strict=True)
        ],
        "posterior_mean_coef_xt": [
            mp.sqrt(1 - b) * omp / o
            for b, omp, o in zip(betas, one_minus_prev, one_minus, strict=True)
        ],
    }
