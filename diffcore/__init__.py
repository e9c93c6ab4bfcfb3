"""diffcore: the mathematics of Gaussian diffusion models on any array-API array.

Schedules are float64 NumPy tables; every function takes the schedule first,
then arrays of any library that array-api-compat recognises, and returns
arrays of that library, device and dtype.
"""

from ._forward import (
    q_mean_variance,
    q_sample,
    q_step_mean_variance,
    q_step_sample,
    q_transition_mean_variance,
    q_transition_sample,
)
from ._parameterisation import (
    alphas_cumprod_from_sigmas,
    eps_from_score,
    eps_from_v,
    eps_from_x_0,
    score_from_eps,
    sigmas_from_alphas_cumprod,
    velocity,
    x_0_from_eps,
    x_0_from_v,
)
from ._posterior import q_posterior_mean_variance, q_posterior_transition_mean_variance
from ._reverse import ReverseMeanVariance, p_mean_variance, predict_x_0_eps
from ._sampling import (
    Step,
    ddim_step,
    ddpm_step,
    dpmpp_2m_step,
    karras_sigmas,
    sample,
    timesteps_for,
    timesteps_for_sigmas,
)
from ._schedule import Schedule

__version__ = "0.1.0"

__all__ = [
    "ReverseMeanVariance",
    "Schedule",
    "Step",
    "__version__",
    "alphas_cumprod_from_sigmas",
    "ddim_step",
    "ddpm_step",
    "dpmpp_2m_step",
    "eps_from_score",
    "eps_from_v",
    "eps_from_x_0",
    "karras_sigmas",
    "p_mean_variance",
    "predict_x_0_eps",
    "q_mean_variance",
    "q_posterior_mean_variance",
    "q_posterior_transition_mean_variance",
    "q_sample",
    "q_step_mean_variance",
    "q_step_sample",
    "q_transition_mean_variance",
    "q_transition_sample",
    "sample",
    "score_from_eps",
    "sigmas_from_alphas_cumprod",
    "timesteps_for",
    "timesteps_for_sigmas",
    "velocity",
    "x_0_from_eps",
    "x_0_from_v",
]
