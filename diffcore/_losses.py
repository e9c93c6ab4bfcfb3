"""Training losses: targets, per-timestep weights and timestep samplers.

Every loss is a weighted mean squared error, per sample, between a model's
prediction and its target (eps, x_0 or v).  The weight tables are float64
NumPy arrays of length T; choosing a table is choosing which objective the
squared error estimates (the simple loss, Min-SNR-gamma, or the bound).
"""

from __future__ import annotations

import math
import reprlib
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ._arrays import (
    Array,
    _check_range,
    check_addressable,
    finish,
    gather,
    read_host,
    shown,
    upcast,
)
from ._forward import _setup
from ._likelihood import check_values_per_sample, mean_over_dims
from ._parameterisation import velocity, why_zero
from ._random import check_seed
from ._reverse import PREDICTION_TYPES, _is_real, check_choice
from ._schedule import Schedule, as_schedule

Float64Array = NDArray[np.float64]

_WEIGHTINGS = ("simple", "epsilon", "min_snr", "vlb")
_VARIANCES = ("fixed_small", "fixed_large")


def training_target(
    schedule: Schedule,
    x_0: Array,
    t: Any,
    noise: Array,
    prediction_type: str = "epsilon",
) -> Array:
    """The regression target of a model that predicts eps, x_0 or v.

    .. math::

        \\epsilon, \\qquad x_0, \\qquad
        v = \\sqrt{\\bar\\alpha_t}\\,\\epsilon - \\sqrt{1 - \\bar\\alpha_t}\\, x_0

    Parameters
    ----------
    schedule : Schedule
    x_0, noise : arrays of one shape (B, ...), dtype and device
        The clean sample and the noise that made x_t.
    t : int or integer array of shape () or (B,)
    prediction_type : {"epsilon", "sample", "v"}

    Returns
    -------
    array
        The target, with x_0's shape and dtype.

    References
    ----------
    Ho et al. (2020), eq. 14; Salimans and Ho (2022), section 4.
    """
    check_choice("prediction_type", prediction_type, PREDICTION_TYPES)
    schedule, _, _ = _setup(schedule, t, "x_0", x_0, noise=noise)
    if prediction_type == "epsilon":
        return noise
    if prediction_type == "sample":
        return x_0
    return velocity(schedule, x_0, t, noise)


def loss_weights(
    schedule: Schedule,
    weighting: str = "simple",
    prediction_type: str = "epsilon",
    *,
    gamma: float = 5.0,
    variance_type: str = "fixed_small",
) -> Float64Array:
    """Per-timestep weights of the squared error of an eps, x_0 or v target.

    With snr_t = alpha_bar_t / (1 - alpha_bar_t), the squared errors of the
    three targets at one x_t are proportional:

    .. math::

        \\|\\epsilon - \\hat\\epsilon\\|^2
        = \\mathrm{snr}_t \\|x_0 - \\hat x_0\\|^2
        = \\bar\\alpha_t \\|v - \\hat v\\|^2

    so each weighting is one table per target:

    ``"simple"``
        1 for every target: the plain mean squared error.
    ``"epsilon"``
        The weights that turn an x_0 or v error into the simple eps loss:
        1, snr_t and alpha_bar_t.
    ``"min_snr"``
        Min-SNR-gamma: min(snr_t, gamma) on the x_0 error, so
        min(1, gamma / snr_t) on eps and min(snr_t, gamma) / (snr_t + 1) on v.
    ``"vlb"``
        The weights that make the mean squared error equal the bound's term
        L_{t-1} in nats per dimension, for a model whose variance
        sigma_t^2 is fixed (Ho et al. 2020, eq. 12):

        .. math::

            w^{\\epsilon}_t = \\frac{\\beta_t^2}{2\\sigma_t^2\\,\\alpha_t\\,
            (1-\\bar\\alpha_t)}

        times snr_t on x_0 and alpha_bar_t on v, computed with
        alpha_bar_t / alpha_t = alpha_bar_{t-1}: at the last step of a
        zero-terminal-SNR schedule the eps weight is infinite while the x_0
        and v weights are finite, alpha_bar_{T-2} / (2 sigma_{T-1}^2).

    Parameters
    ----------
    schedule : Schedule
    weighting : {"simple", "epsilon", "min_snr", "vlb"}
    prediction_type : {"epsilon", "sample", "v"}
        The target the squared error is taken of.
    gamma : float
        The Min-SNR clip, positive (5 in Hang et al.).
    variance_type : {"fixed_small", "fixed_large"}
        For ``"vlb"``: sigma_t^2 is the posterior variance (its t = 0 entry
        from the schedule's clipped log) or beta_t.

    Returns
    -------
    ndarray of float64, shape (T,)

    References
    ----------
    Ho et al. (2020), eqs. 12 and 14; Hang et al. (2023), Efficient Diffusion
    Training via Min-SNR Weighting Strategy, eq. 5 and table 1.

    Examples
    --------
    >>> import diffcore
    >>> s = diffcore.Schedule.linear(1000)
    >>> w = diffcore.loss_weights(s, "min_snr", "epsilon", gamma=5.0)
    >>> round(float(w[0]), 8), float(w[-1])
    (0.00050005, 1.0)
    """
    schedule = as_schedule(schedule)
    _check_weighting(weighting, prediction_type, gamma, variance_type)
    # A fresh array: some weightings are the schedule's own read-only tables.
    return np.array(
        _weights(schedule, weighting, prediction_type, gamma, variance_type)
    )


def _check_weighting(
    weighting: str, prediction_type: str, gamma: Any, variance_type: str
) -> None:
    check_choice("weighting", weighting, _WEIGHTINGS)
    check_choice("prediction_type", prediction_type, PREDICTION_TYPES)
    check_choice("variance_type", variance_type, _VARIANCES)
    msg = f"gamma must be a positive finite number; got {reprlib.repr(gamma)}"
    if not _is_real(gamma):
        raise TypeError(msg)
    try:
        value = float(gamma)
    except OverflowError:  # an int beyond float64
        value = math.inf
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(msg)


def _weights(
    schedule: Schedule,
    weighting: str,
    prediction_type: str,
    gamma: float,
    variance_type: str,
) -> Float64Array:
    """The weight table of checked options."""
    snr, ab = schedule.snr, schedule.alphas_cumprod
    if weighting == "simple":
        return np.ones(len(schedule))
    if weighting == "min_snr":
        return _min_snr(snr, float(gamma), prediction_type)
    if weighting == "vlb":
        return _vlb_weights(schedule, variance_type, prediction_type)
    # "epsilon": the factors that turn each target's error into the eps error
    return {"epsilon": np.ones_like(snr), "sample": snr, "v": ab}[prediction_type]


def _min_snr(snr: Float64Array, gamma: float, prediction_type: str) -> Float64Array:
    clipped = np.minimum(snr, gamma)
    if prediction_type == "sample":
        return clipped
    if prediction_type == "v":
        return clipped / (snr + 1.0)
    with np.errstate(divide="ignore", over="ignore"):
        return np.minimum(1.0, gamma / snr)


def _vlb_weights(
    schedule: Schedule, variance_type: str, prediction_type: str
) -> Float64Array:
    """Ho et al. (2020), eq. 12: beta^2 / (2 sigma^2 alpha (1 - alpha_bar)) on eps.

    Times snr_t on x_0 and alpha_bar_t on v, with alpha_bar_t / alpha_t
    written as alpha_bar_{t-1}: at the last step of a zero-terminal-SNR
    schedule alpha_t = alpha_bar_t = 0, the eps weight is infinite, and the
    x_0 and v weights are finite (no inf * 0).
    """
    if variance_type == "fixed_small":
        variance = np.exp(schedule.posterior_log_variance_clipped)
    else:
        variance = schedule.betas
    one_minus = -np.expm1(schedule.log_alphas_cumprod)
    scale = schedule.betas**2 / (2.0 * variance * one_minus)
    if prediction_type == "epsilon":
        with np.errstate(divide="ignore"):
            return scale / schedule.alphas
    if prediction_type == "v":
        return scale * schedule.alphas_cumprod_prev
    return scale * schedule.alphas_cumprod_prev / one_minus


def diffusion_loss(
    schedule: Schedule,
    prediction: Array,
    x_0: Array,
    t: Any,
    noise: Array,
    *,
    prediction_type: str = "epsilon",
    weighting: str = "simple",
    gamma: float = 5.0,
    variance_type: str = "fixed_small",
) -> Array:
    """Weighted mean squared error of a prediction, per sample.

    .. math::

        \\mathcal L(x_0, t, \\epsilon) = w_t \\frac{1}{D}
        \\| y_t(x_0, \\epsilon) - \\hat y_\\theta(x_t, t) \\|^2

    where y is the eps, x_0 or v target and w_t comes from
    :func:`loss_weights`.  With ``weighting="simple"`` and eps prediction
    this is L_simple of Ho et al. (2020), eq. 14; with ``"vlb"`` its mean
    over t (times T) plus L_T is the bound for a fixed-variance model.

    Parameters
    ----------
    schedule : Schedule
    prediction : array, shape (B, ...)
        The model output, of x_0's shape, dtype and device.
    x_0, noise : arrays of one shape (B, ...)
        The clean sample and the noise used to draw x_t.
    t : int or integer array of shape () or (B,)
    prediction_type, weighting, gamma, variance_type
        As in :func:`loss_weights`.

    Returns
    -------
    array, shape (B,)
        The loss per sample, in the compute dtype.

    Raises
    ------
    ValueError
        Where the weight is infinite at a timestep read on the host (``"vlb"``
        with eps prediction where alpha_bar_t = 0); timesteps on a device, as
        under jit, are not read and give inf or NaN there.

    Examples
    --------
    >>> import numpy as np, diffcore
    >>> s = diffcore.Schedule.linear(1000)
    >>> x_0, noise = np.zeros((2, 4)), np.ones((2, 4))
    >>> diffcore.diffusion_loss(s, np.zeros((2, 4)), x_0, 10, noise).tolist()
    [1.0, 1.0]
    """
    schedule = as_schedule(schedule)
    _check_weighting(weighting, prediction_type, gamma, variance_type)
    schedule, xp, steps = _setup(
        schedule, t, "x_0", x_0, noise=noise, prediction=prediction
    )
    check_values_per_sample(x_0)
    target = training_target(schedule, x_0, t, noise, prediction_type)
    error = mean_over_dims(xp, (upcast(xp, prediction) - upcast(xp, target)) ** 2)
    # The table is kept by the schedule, so its host, rounded and device
    # copies are built once, and gathered like any other table.
    name = f"loss_weights:{weighting}:{prediction_type}:{float(gamma)!r}"
    name += f":{variance_type}"
    schedule._keep(
        name,
        lambda: _weights(schedule, weighting, prediction_type, gamma, variance_type),
    )
    _check_finite_weight(schedule, name, steps.host, weighting, prediction_type)
    weight = gather(schedule, name, steps, xp, error)
    return finish(xp, weight * error, error.dtype)


def _check_finite_weight(
    schedule: Schedule,
    name: str,
    host: NDArray[np.int64] | None,
    weighting: str,
    prediction_type: str,
) -> None:
    """The weight must be finite at timesteps read on the host (else inf or NaN).

    The eps weight of ``"vlb"`` is infinite where alpha_bar_t = 0 (the last
    step of a zero-terminal-SNR schedule); timesteps on a device (under jit)
    are not read, and give inf or NaN there.
    """
    if host is None:
        return
    weight = schedule._table(name)[host]
    infinite = np.isinf(weight)
    if not infinite.any():
        return
    bad = sorted(set(host[infinite].tolist()))
    msg = (
        f"weighting={shown(weighting)} with "
        f"prediction_type={shown(prediction_type)} has an "
        f"infinite weight at t = {shown(bad)} (alpha_bar_t = 0, "
        f"{why_zero(schedule, bad)}); "
        "predict 'v' or 'sample' (x_0) there, whose weights are finite"
    )
    raise ValueError(msg)


def _check_size(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        msg = f"{name} must be a positive integer; got {shown(value)}"
        raise TypeError(msg)
    if value < 1:
        msg = f"{name} must be a positive integer; got {shown(value)}"
        raise ValueError(msg)
    check_addressable(name, value)
    return int(value)


def _rng(rng: Any) -> Any:
    """A NumPy generator from a generator, an int seed or None."""
    if isinstance(rng, (np.random.Generator, np.random.RandomState)):
        return rng
    rng = check_seed("rng", rng)
    if rng is None or isinstance(rng, int):
        return np.random.default_rng(rng)
    msg = (
        "rng must be a numpy.random.Generator, an int seed or None; "
        f"got {type(rng).__name__}"
    )
    raise TypeError(msg)


class UniformSampler:
    """Timesteps drawn uniformly from {0, ..., T-1}, each with weight 1.

    Parameters
    ----------
    T : int
        Number of steps (``len(schedule)``).

    Examples
    --------
    >>> import numpy as np, diffcore
    >>> t, w = diffcore.UniformSampler(1000).sample(3, np.random.default_rng(0))
    >>> t.tolist(), w.tolist()
    ([636, 269, 40], [1.0, 1.0, 1.0])
    """

    def __init__(self, T: int) -> None:
        self._T = _check_size("T", T)

    # Read-only: the tables below are sized by them (a new T broke sample()).
    @property
    def T(self) -> int:
        """Number of steps."""
        return self._T

    def probabilities(self) -> Float64Array:
        """The probability of each timestep, shape (T,)."""
        return np.full(self.T, 1.0 / self.T)

    def sample(
        self, batch_size: int, rng: Any = None
    ) -> tuple[NDArray[np.int64], Float64Array]:
        """Draw timesteps and the weights 1 / (T p_t) that keep losses unbiased.

        Parameters
        ----------
        batch_size : int
        rng : numpy.random.Generator, int seed or None
            The source of the draws; None draws fresh entropy.  Named rng,
            not ``generator`` as elsewhere, and NumPy's only: timesteps are
            drawn on the host (place them with ``torch.as_tensor``).

        Returns
        -------
        t : ndarray of int64, shape (batch_size,)
        weights : ndarray of float64, shape (batch_size,)
            Multiply each sample's loss by its weight: then the batch mean
            estimates the uniform average over t whatever the sampler.
        """
        batch_size = _check_size("batch_size", batch_size)
        rng = _rng(rng)
        p = self.probabilities()
        t = rng.choice(self.T, size=batch_size, p=p).astype(np.int64)
        return t, 1.0 / (self.T * p[t])


def _check_update(steps: NDArray[Any], values: NDArray[Any], T: int) -> None:
    """t must hold integers in [0, T) and losses as many finite real numbers."""
    if steps.size and (
        steps.dtype == np.bool_ or not np.issubdtype(steps.dtype, np.integer)
    ):
        msg = f"t must hold integers; got {steps.dtype}"
        raise TypeError(msg)
    if values.dtype == np.bool_ or not (
        np.issubdtype(values.dtype, np.integer)
        or np.issubdtype(values.dtype, np.floating)
    ):
        msg = f"losses must hold real numbers; got {values.dtype}"
        raise TypeError(msg)
    if steps.shape != values.shape:
        msg = (
            f"t and losses must have one entry per sample; got shapes "
            f"{steps.shape} and {values.shape}"
        )
        raise ValueError(msg)
    if steps.size:
        _check_range("t", steps, T)
    finite = np.isfinite(values)
    if not finite.all():
        i = int(np.argmin(finite))
        msg = f"losses must be finite; got {values[i]} at t = {steps[i]}"
        raise ValueError(msg)


class LossHistorySampler(UniformSampler):
    """Importance sampling of timesteps by the history of their losses.

    Keeps the last ``history`` losses seen at each timestep.  Until every
    timestep has a full history it samples uniformly; afterwards

    .. math::

        p_t \\propto \\sqrt{\\mathrm{E}[L_t^2]}, \\qquad
        p_t \\leftarrow (1 - u)\\, p_t + u / T

    which minimises the variance of the importance-weighted bound estimate
    when losses are proportional to that root mean square; the uniform
    share u keeps every p_t positive.

    Parameters
    ----------
    T : int
    history : int
        Losses kept per timestep (10 in improved DDPM).
    uniform_share : float
        u in (0, 1].

    References
    ----------
    Nichol and Dhariwal (2021), Improved DDPM, section 3.3 and eq. 18.
    """

    def __init__(self, T: int, history: int = 10, uniform_share: float = 1e-3) -> None:
        super().__init__(T)
        self._history = _check_size("history", history)
        msg = (
            f"uniform_share must be a real number in (0, 1]; got {shown(uniform_share)}"
        )
        if not _is_real(uniform_share):
            raise TypeError(msg)
        if not 0 < uniform_share <= 1:
            raise ValueError(msg)
        self._uniform_share = float(uniform_share)
        self._losses = np.zeros((self.T, self.history))
        self._counts = np.zeros(self.T, dtype=np.int64)

    @property
    def history(self) -> int:
        """Losses kept per timestep."""
        return self._history

    @property
    def uniform_share(self) -> float:
        """The share u of the uniform distribution in p_t."""
        return self._uniform_share

    @property
    def warm(self) -> bool:
        """Whether every timestep has a full history."""
        return bool(np.all(self._counts >= self.history))

    def update(self, t: Any, losses: Any) -> None:
        """Record losses (before any importance weighting) seen at timesteps t.

        Parameters
        ----------
        t : array_like of int, shape (B,)
            Integers in [0, T), of any library.
        losses : array_like of float, shape (B,)
            Finite real numbers, of any library, or a list of them; a torch
            tensor that requires grad is detached, a meta tensor refused
            (ValueError), and every dtype is read as float64.

        Raises
        ------
        TypeError, ValueError
            For bad t or losses, before anything is recorded.
        """
        steps, values = read_host("t", t), read_host("losses", losses)
        for name, read in (("t", steps), ("losses", values)):
            if read.ndim > 1:
                msg = (
                    f"{name} must have shape (B,), one entry per sample; got "
                    f"shape {read.shape}"
                )
                raise ValueError(msg)
        steps, values = steps.reshape(-1), values.reshape(-1)
        _check_update(steps, values, self.T)

        for step, value in zip(steps.tolist(), values.tolist(), strict=True):
            row = self._losses[step]
            row[:-1] = row[1:].copy()
            row[-1] = value
            self._counts[step] += 1

    def probabilities(self) -> Float64Array:
        """Uniform until warm, then proportional to the RMS of the history."""
        if not self.warm:
            return super().probabilities()
        # The RMS of losses divided by the largest, so squares cannot overflow.
        scale = np.max(np.abs(self._losses))
        if not scale > 0:
            return super().probabilities()
        rms = np.sqrt(np.mean((self._losses / scale) ** 2, axis=1))
        p: Float64Array = rms / rms.sum()
        return (1.0 - self.uniform_share) * p + self.uniform_share / self.T
