"""diffcore: the mathematics of Gaussian diffusion models on any array-API array.

Schedules are float64 NumPy tables; every function takes the schedule first,
then arrays of any library that array-api-compat recognises, and returns
arrays of that library, device and dtype.
"""

from typing import TYPE_CHECKING, Any

from ._backends import Backend
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
from ._posterior import (
    q_posterior_mean_variance,
    q_posterior_sample,
    q_posterior_transition_mean_variance,
)
from ._random import standard_normal_like
from ._reverse import ReverseMeanVariance, p_mean_variance, predict_x_0_eps
from ._schedule import Schedule

if TYPE_CHECKING:
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

# The less used modules load on first access (PEP 562): `import diffcore`
# then costs only the core.
_LAZY = {
    "VariationalBound": "_likelihood",
    "discretized_gaussian_log_likelihood": "_likelihood",
    "gaussian_log_likelihood": "_likelihood",
    "log_standard_normal_cdf": "_likelihood",
    "normal_kl": "_likelihood",
    "prior_bpd": "_likelihood",
    "variational_bound": "_likelihood",
    "variational_bound_estimate": "_likelihood",
    "vb_term_bpd": "_likelihood",
    "LossHistorySampler": "_losses",
    "UniformSampler": "_losses",
    "diffusion_loss": "_losses",
    "loss_weights": "_losses",
    "training_target": "_losses",
    "annealed_langevin": "_ncsn",
    "dsm_loss": "_ncsn",
    "dsm_target": "_ncsn",
    "geometric_sigmas": "_ncsn",
    "perturb": "_ncsn",
    "ve_from_vp": "_ncsn",
    "vp_from_ve": "_ncsn",
    "Step": "_sampling",
    "ddim_step": "_sampling",
    "ddpm_step": "_sampling",
    "dpmpp_2m_step": "_sampling",
    "karras_sigmas": "_sampling",
    "sample": "_sampling",
    "timesteps_for": "_sampling",
    "timesteps_for_sigmas": "_sampling",
    "binomial_betas": "_sohl_dickstein",
    "binomial_posterior_probability": "_sohl_dickstein",
    "binomial_q_probability": "_sohl_dickstein",
    "binomial_q_step_probability": "_sohl_dickstein",
    "reverse_entropy_bounds": "_sohl_dickstein",
    "sohl_dickstein_betas": "_sohl_dickstein",
    "sohl_dickstein_bound": "_sohl_dickstein",
}

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


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        msg = f"module 'diffcore' has no attribute {name!r}"
        raise AttributeError(msg)
    from importlib import import_module

    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
