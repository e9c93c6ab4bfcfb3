"""Data distributions whose diffused marginals and denoisers are known exactly.

For data x_0 drawn from a mixture of isotropic Gaussians,
x_0 ~ sum_k w_k N(mu_k, s_k^2 I), the forward process gives, with
a = sqrt(alpha_bar_t) and sigma^2 = 1 - alpha_bar_t, the marginal

    q(x_t) = sum_k w_k N(x_t; a mu_k, v_k I),   v_k = a^2 s_k^2 + sigma^2,

and every quantity a sampler needs follows in closed form: E[x_0 | x_t], the
score of q(x_t) and its log density.  An isotropic Gaussian is one component;
a finite data set (its empirical distribution) is the mixture with s_k = 0
and equal weights.  These stand in for a trained network in tests and demos.

Everything is computed with the array API in the samples' own library and
device (the compute dtype of x_t), with a hand-written, max-shifted
logsumexp.  Memory grows as B x K x d for B samples, K components and
dimension d.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._arrays import Array, Namespace, finish, gather, shown, upcast
from ._forward import _setup
from ._random import check_seed
from ._reverse import PREDICTION_TYPES, check_choice
from ._schedule import Schedule

__all__ = ["EmpiricalDistribution", "GaussianMixture", "IsotropicGaussian"]


def _reals(name: str, values: Any) -> NDArray[np.float64]:
    """values as float64, refusing what is not real numbers by name (strings,
    None, bools, complex numbers and ragged lists reached NumPy, or became
    numbers: "1" was read as 1.0)."""
    if values is None or isinstance(values, (str, bytes)):
        msg = f"{name} must be real numbers; got {shown(values)}"
        raise TypeError(msg)
    try:
        array = np.asarray(values)
    except ValueError:
        msg = f"{name} must be a rectangular array of numbers; got a ragged list"
        raise ValueError(msg) from None
    if array.dtype.kind not in "iuf":
        msg = f"{name} must hold real numbers; got dtype {array.dtype}: {shown(values)}"
        raise TypeError(msg)
    return array.astype(np.float64)


def _matrix(name: str, values: ArrayLike) -> NDArray[np.float64]:
    array = _reals(name, values)
    if array.ndim != 2 or array.shape[0] < 1 or array.shape[1] < 1:
        msg = f"{name} must be a non-empty 2-d array (K, d); got shape {array.shape}"
        raise ValueError(msg)
    if not np.all(np.isfinite(array)):
        msg = f"{name} must be finite; got NaN or inf"
        raise ValueError(msg)
    return array


def _per_component(name: str, values: ArrayLike, count: int) -> NDArray[np.float64]:
    array = _reals(name, values)
    if array.shape not in ((), (count,)):
        msg = (
            f"{name} must be one number or {count} numbers, one per component; "
            f"got shape {array.shape}"
        )
        raise ValueError(msg)
    if not np.all(np.isfinite(array) & (array >= 0.0)):
        msg = f"{name} must be finite and non-negative; got {array.tolist()}"
        raise ValueError(msg)
    return np.broadcast_to(array, (count,)).copy()


def _normalised(weights: ArrayLike | None, count: int) -> NDArray[np.float64]:
    """Positive finite weights divided by their sum (by their largest first,
    so that neither the sum overflows nor the ratios underflow)."""
    raw = np.ones(count) if weights is None else _reals("weights", weights)
    if raw.shape != (count,) or not np.all(np.isfinite(raw) & (raw > 0.0)):
        msg = f"weights must be {count} positive finite numbers; got {raw.tolist()}"
        raise ValueError(msg)
    scaled = raw / raw.max()
    normalised: NDArray[np.float64] = scaled / scaled.sum()
    return normalised


class GaussianMixture:
    """x_0 ~ sum_k w_k N(mu_k, s_k^2 I): a mixture of isotropic Gaussians in R^d.

    .. math::

        q(x_t) = \\sum_k w_k\\, \\mathcal N\\left(x_t;\\ \\sqrt{\\bar\\alpha_t}
        \\mu_k,\\ (\\bar\\alpha_t s_k^2 + 1 - \\bar\\alpha_t) I\\right)

    Parameters
    ----------
    means : array_like, shape (K, d)
        Component means mu_k.
    stds : float or array_like, shape (K,)
        Component standard deviations s_k >= 0 (0 gives a point mass).
    weights : array_like, shape (K,), optional
        Positive weights, normalised to sum to 1; equal by default.

    References
    ----------
    Efron (2011), Tweedie's Formula and Selection Bias (E[x_0 | x_t] from the
    score); Karras et al. (2022), appendix B.3 (the ideal denoiser of a finite
    data set).

    Examples
    --------
    >>> import numpy as np, diffcore
    >>> from diffcore.reference import GaussianMixture
    >>> s = diffcore.Schedule.linear(1000)
    >>> mix = GaussianMixture([[-1.0], [1.0]], 0.1)
    >>> mix.denoise(s, np.zeros((1, 1)), 999).tolist()
    [[0.0]]
    """

    def __init__(
        self, means: ArrayLike, stds: ArrayLike, weights: ArrayLike | None = None
    ) -> None:
        self.means = _matrix("means", means)
        count = self.means.shape[0]
        self.stds = _per_component("stds", stds, count)
        self.weights = _normalised(weights, count)

    @property
    def dim(self) -> int:
        """The dimension d of the data."""
        return int(self.means.shape[1])

    def sample(self, n: int, generator: Any = None) -> NDArray[np.float64]:
        """n independent draws of x_0 as a float64 NumPy array (n, d).

        ``generator`` is a ``numpy.random.Generator``, an int seed in
        [0, 2**63) or None.
        """
        msg = f"n must be a positive int; got {shown(n)}"
        if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)):
            raise TypeError(msg)
        if n < 1:
            raise ValueError(msg)
        generator = check_seed("generator", generator)
        if not (generator is None or isinstance(generator, (int, np.random.Generator))):
            msg = (
                "generator must be a numpy.random.Generator, an int seed or None "
                f"(the draws are NumPy's); got {shown(generator)}"
            )
            raise TypeError(msg)
        rng = np.random.default_rng(generator)
        k = rng.choice(self.means.shape[0], size=int(n), p=self.weights)
        noise = rng.standard_normal((int(n), self.dim))
        draws: NDArray[np.float64] = self.means[k] + self.stds[k, None] * noise
        return draws

    def _components(
        self, schedule: Schedule, x_t: Array, t: Any
    ) -> tuple[Namespace, Any, Array, Array, Array, Array]:
        """Per-component residuals and variances, responsibilities and log q(x_t).

        Returns the namespace, a, the residuals x_t - a mu_k (B, K, d), v_k
        (shaped to broadcast on them), the responsibilities (B, K) and
        log q(x_t) (B, 1).
        """
        schedule, xp, steps = _setup(schedule, t, "x_t", x_t)
        if x_t.ndim != 2 or x_t.shape[1] != self.dim:
            msg = f"x_t must have shape (B, {self.dim}); got {tuple(x_t.shape)}"
            raise ValueError(msg)
        x = upcast(xp, x_t)
        batch = x.shape[0]
        a = gather(schedule, "sqrt_alphas_cumprod", steps, xp, x_t)
        noise_var = gather(schedule, "one_minus_alphas_cumprod", steps, xp, x_t)
        if not isinstance(a, float):
            a = xp.reshape(a, (batch, 1, 1))
            noise_var = xp.reshape(noise_var, (batch, 1, 1))

        def put(values: NDArray[np.float64]) -> Array:
            return xp.asarray(values, dtype=x.dtype, device=_device(x))

        means = put(self.means[None, :, :])
        variances = a * a * put(self.stds[None, :, None] ** 2) + noise_var
        residual = xp.reshape(x, (batch, 1, self.dim)) - a * means

        # log w_k + log N(x_t; a mu_k, v_k I), then a max-shifted logsumexp.
        # Where |x_t|^2 overflows, every logit is -inf: log q(x_t) is -inf
        # (the shift is 0 there), the responsibilities NaN, without warnings.
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            sq = xp.sum(residual * residual / variances, axis=2)
            log_var = xp.log(variances[..., 0])
            logits = put(np.log(self.weights)) - 0.5 * (
                sq + self.dim * (log_var + math.log(2.0 * math.pi))
            )
            top = xp.max(logits, axis=1, keepdims=True)
            top = xp.where(top > -math.inf, top, xp.zeros_like(top))
            log_q = xp.log(xp.sum(xp.exp(logits - top), axis=1, keepdims=True)) + top
            resp = xp.exp(logits - log_q)
        return xp, a, residual, variances, resp, log_q

    def denoise(self, schedule: Schedule, x_t: Array, t: Any) -> Array:
        """E[x_0 | x_t], the ideal denoiser.

        .. math::

            E[x_0 \\mid x_t] = \\sum_k r_k(x_t) \\left(\\mu_k +
            \\frac{\\sqrt{\\bar\\alpha_t}\\, s_k^2}{v_k} (x_t -
            \\sqrt{\\bar\\alpha_t} \\mu_k)\\right)

        with r_k the posterior responsibilities.

        Parameters
        ----------
        schedule : Schedule
        x_t : array, shape (B, d)
        t : int or integer array of shape () or (B,)

        Returns
        -------
        array of x_t's shape and dtype
        """
        xp, a, residual, variances, resp, _ = self._components(schedule, x_t, t)
        x = upcast(xp, x_t)
        means = xp.asarray(self.means, dtype=x.dtype, device=_device(x))
        stds2 = xp.asarray(self.stds[:, None] ** 2, dtype=x.dtype, device=_device(x))
        per_component = means + (a * stds2 / variances) * residual
        value = xp.sum(resp[..., None] * per_component, axis=1)
        return _finish(xp, value, x_t.dtype)

    def score(self, schedule: Schedule, x_t: Array, t: Any) -> Array:
        """The score of the diffused marginal, grad log q(x_t).

        .. math::

            \\nabla \\log q(x_t) = -\\sum_k r_k(x_t)\\,
            \\frac{x_t - \\sqrt{\\bar\\alpha_t}\\mu_k}{v_k}

        Parameters
        ----------
        schedule : Schedule
        x_t : array, shape (B, d)
        t : int or integer array of shape () or (B,)

        Returns
        -------
        array of x_t's shape and dtype
        """
        xp, _, residual, variances, resp, _ = self._components(schedule, x_t, t)
        value = -xp.sum(resp[..., None] * residual / variances, axis=1)
        return _finish(xp, value, x_t.dtype)

    def log_prob(self, schedule: Schedule, x_t: Array, t: Any) -> Array:
        """The exact log density log q(x_t) of the diffused data, per sample.

        .. math::

            \\log q(x_t) = \\log \\sum_k w_k\\, \\mathcal N(x_t;
            \\sqrt{\\bar\\alpha_t}\\mu_k,\\ v_k I)

        Parameters
        ----------
        schedule : Schedule
        x_t : array, shape (B, d)
        t : int or integer array of shape () or (B,)

        Returns
        -------
        array, shape (B,), x_t's dtype
            -inf where |x_t|^2 overflows the compute dtype (there
            :meth:`denoise`, :meth:`score` and :meth:`eps` give NaN).
        """
        xp, *_, log_q = self._components(schedule, x_t, t)
        return _finish(xp, log_q[:, 0], x_t.dtype)

    def eps(self, schedule: Schedule, x_t: Array, t: Any) -> Array:
        """E[eps | x_t] = -sqrt(1 - alpha_bar_t) grad log q(x_t) (Tweedie).

        .. math::

            E[\\epsilon \\mid x_t] = -\\sqrt{1 - \\bar\\alpha_t}\\,
            \\nabla \\log q(x_t)

        Returns
        -------
        array of x_t's shape and dtype
        """
        xp, _, residual, variances, resp, _ = self._components(schedule, x_t, t)
        _, _, steps = _setup(schedule, t, "x_t", x_t)
        sigma = gather(schedule, "sqrt_one_minus_alphas_cumprod", steps, xp, x_t)
        value = sigma * xp.sum(resp[..., None] * residual / variances, axis=1)
        return _finish(xp, value, x_t.dtype)

    def model(
        self, schedule: Schedule, prediction_type: str = "epsilon"
    ) -> Callable[[Array, Any], Array]:
        """The exact model ``model(x_t, t)`` for :func:`diffcore.sample`.

        t holds timesteps of ``schedule`` (the original, unrespaced one: the
        sampler passes ``timestep_map``); the output is E[eps | x_t], E[x_0 |
        x_t] or E[v | x_t] for ``prediction_type`` "epsilon", "sample", "v".
        """
        check_choice("prediction_type", prediction_type, PREDICTION_TYPES)

        def exact(x_t: Array, t: Any) -> Array:
            if prediction_type == "epsilon":
                return self.eps(schedule, x_t, t)
            if prediction_type == "sample":
                return self.denoise(schedule, x_t, t)
            _, xp, steps = _setup(schedule, t, "x_t", x_t)
            a = gather(schedule, "sqrt_alphas_cumprod", steps, xp, x_t)
            sigma = gather(schedule, "sqrt_one_minus_alphas_cumprod", steps, xp, x_t)
            eps = upcast(xp, self.eps(schedule, x_t, t))
            x_0 = upcast(xp, self.denoise(schedule, x_t, t))
            return _finish(xp, a * eps - sigma * x_0, x_t.dtype)

        return exact


class IsotropicGaussian(GaussianMixture):
    """x_0 ~ N(mu, s^2 I), one Gaussian component.

    .. math::

        q(x_t) = \\mathcal N\\left(\\sqrt{\\bar\\alpha_t}\\mu,\\
        (\\bar\\alpha_t s^2 + 1 - \\bar\\alpha_t) I\\right)

    Parameters
    ----------
    mean : array_like, shape (d,)
    std : float
        s >= 0.

    Examples
    --------
    >>> import numpy as np, diffcore
    >>> from diffcore.reference import IsotropicGaussian
    >>> s = diffcore.Schedule.linear(1000)
    >>> g = IsotropicGaussian([0.0, 0.0], 1.0)
    >>> g.score(s, np.ones((1, 2)), 500).tolist()
    [[-1.0, -1.0]]
    """

    def __init__(self, mean: ArrayLike, std: float) -> None:
        center = _reals("mean", mean)
        if center.ndim != 1 or center.size < 1:
            msg = f"mean must be a non-empty 1-d array (d,); got shape {center.shape}"
            raise ValueError(msg)
        _matrix("mean", center[None, :])
        if np.ndim(std) != 0:
            msg = f"std must be one number; got shape {np.shape(std)}"
            raise ValueError(msg)
        super().__init__(center[None, :], _per_component("std", std, 1))


class EmpiricalDistribution(GaussianMixture):
    """x_0 drawn uniformly from a finite data set (the empirical distribution).

    .. math::

        q(x_t) = \\frac1N \\sum_n \\mathcal N\\left(x_t;\\
        \\sqrt{\\bar\\alpha_t} y_n,\\ (1 - \\bar\\alpha_t) I\\right)

    Its denoiser is the one a network trained to zero loss on the data set
    would learn: a softmax-weighted average of the data points.

    Parameters
    ----------
    points : array_like, shape (N, d)

    References
    ----------
    Karras et al. (2022), appendix B.3.

    Examples
    --------
    >>> import numpy as np, diffcore
    >>> from diffcore.reference import EmpiricalDistribution
    >>> s = diffcore.Schedule.linear(1000)
    >>> data = EmpiricalDistribution([[1.0, 2.0]])
    >>> data.denoise(s, np.zeros((1, 2)), 0).tolist()
    [[1.0, 2.0]]
    """

    def __init__(self, points: ArrayLike) -> None:
        super().__init__(_matrix("points", points), 0.0)


def _finish(xp: Namespace, value: Array, dtype: Any) -> Array:
    """Round to the sample dtype; values beyond its range become +-inf first,
    as rounding makes them, without NumPy's warning on an overflowing cast."""
    if value.dtype != dtype:
        big = float(xp.finfo(dtype).max)
        inf = xp.full_like(value, math.inf)
        value = xp.where(value > big, inf, xp.where(value < -big, -inf, value))
    return finish(xp, value, dtype)


def _device(x: Array) -> Any:
    from array_api_compat import device

    return device(x)
