"""diffcore: the mathematics of Gaussian diffusion models on any array-API array.

Schedules are float64 NumPy tables; every function takes the schedule first,
then arrays of any library that array-api-compat recognises, and returns
arrays of that library, device and dtype.
"""

from ._backends import Backend
from ._forward import (
    q_mean_variance,
    q_sample,
    q_step_mean_variance,
    q_step_sample,
    q_transition_mean_variance,
    q_transition_sample,
)
from ._likelihood import (
    VariationalBound,
    discretized_gaussian_log_likelihood,
    gaussian_log_likelihood,
    log_standard_normal_cdf,
    normal_kl,
    prior_bpd,
    variational_bound,
    variational_bound_estimate,
    vb_term_bpd,
)
from ._losses import (
    LossHistorySampler,
    UniformSampler,
    diffusion_loss,
    loss_weights,
    training_target,
)
from ._ncsn import (
    annealed_langevin,
    dsm_loss,
    dsm_target,
    geometric_sigmas,
    perturb,
    ve_from_vp,
    vp_from_ve,
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
from ._posterior import (
    q_posterior_mean_variance,
    q_posterior_sample,
    q_posterior_transition_mean_variance,
)
from ._random import standard_normal_like
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
from ._sohl_dickstein import (
    binomial_betas,
    binomial_posterior_probability,
    binomial_q_probability,
    binomial_q_step_probability,
    reverse_entropy_bounds,
    sohl_dickstein_betas,
    sohl_dickstein_bound,
)

__version__ = "0.1.0"

__all__ = [
    "Backend",
    "LossHistorySampler",
    "ReverseMeanVariance",
    "Schedule",
    "Step",
    "UniformSampler",
    "VariationalBound",
    "__version__",
    "alphas_cumprod_from_sigmas",
    "annealed_langevin",
    "binomial_betas",
    "binomial_posterior_probability",
    "binomial_q_probability",
    "binomial_q_step_probability",
    "ddim_step",
    "ddpm_step",
    "diffusion_loss",
    "discretized_gaussian_log_likelihood",
    "dpmpp_2m_step",
    "dsm_loss",
    "dsm_target",
    "eps_from_score",
    "eps_from_v",
    "eps_from_x_0",
    "gaussian_log_likelihood",
    "geometric_sigmas",
    "karras_sigmas",
    "log_standard_normal_cdf",
    "loss_weights",
    "normal_kl",
    "p_mean_variance",
    "perturb",
    "predict_x_0_eps",
    "prior_bpd",
    "q_mean_variance",
    "q_posterior_mean_variance",
    "q_posterior_sample",
    "q_posterior_transition_mean_variance",
    "q_sample",
    "q_step_mean_variance",
    "q_step_sample",
    "q_transition_mean_variance",
    "q_transition_sample",
    "reverse_entropy_bounds",
    "sample",
    "score_from_eps",
    "sigmas_from_alphas_cumprod",
    "sohl_dickstein_betas",
    "sohl_dickstein_bound",
    "standard_normal_like",
    "timesteps_for",
    "timesteps_for_sigmas",
    "training_target",
    "variational_bound",
    "variational_bound_estimate",
    "vb_term_bpd",
    "ve_from_vp",
    "velocity",
    "vp_from_ve",
    "x_0_from_eps",
    "x_0_from_v",
]
