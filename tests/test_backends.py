"""Backends: one parametrised suite over every array library.

Each test takes the ``xp`` fixture (numpy, array_api_strict, torch, jax, dask,
cupy; a missing library skips with a reason) or targets the one library whose
feature it checks (torch.compile, jax.jit, Dask's laziness).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

import array_api_compat as compat
import numpy as np
import pytest

import diffcore
from diffcore import _backends

SCHEDULE = diffcore.Schedule.linear(1000)
# scripts/gpu-check.sh sets this to "cuda" to run the torch tests on the GPU.
TORCH_DEVICE = os.environ.get("DIFFCORE_TORCH_DEVICE", "cpu")
T = np.array([0, 10, 500, 999])
DTYPES = ["float16", "bfloat16", "float32", "float64"]


def make(xp: ModuleType, values: Any, dtype: str = "float32") -> Any:
    """values as an array of xp in dtype (skips when xp has no such dtype)."""
    kind = getattr(xp, dtype, None)
    if kind is None or (
        dtype == "float16" and compat.is_array_api_strict_namespace(xp)
    ):
        pytest.skip(f"{xp.__name__} has no {dtype}")
    device = TORCH_DEVICE if xp.__name__.endswith("torch") else None
    return xp.asarray(np.asarray(values, dtype=np.float64), dtype=kind, device=device)


def to_numpy(x: Any) -> np.ndarray[Any, Any]:
    if compat.is_torch_array(x):
        import torch

        return x.detach().cpu().to(torch.float64).numpy()
    if compat.is_cupy_array(x):
        return x.get().astype(np.float64)
    if compat.is_dask_array(x):
        x = x.compute()
    if compat.is_jax_array(x):
        x = x.astype("float32") if str(x.dtype) == "bfloat16" else x
    return np.asarray(x).astype(np.float64)


def source(xp: ModuleType, seed: int) -> dict[str, Any]:
    """The keyword that seeds xp's backend (JAX takes keys)."""
    if xp.__name__.startswith("jax"):
        import jax

        return {"key": jax.random.key(seed)}
    return {"generator": seed}


def data(shape: tuple[int, ...] = (4, 3, 2)) -> tuple[np.ndarray[Any, Any], ...]:
    rng = np.random.default_rng(7)
    return rng.standard_normal(shape), rng.standard_normal(shape)


# -- namespace, device and dtype are kept --------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_results_keep_namespace_device_and_dtype(xp: ModuleType, dtype: str) -> None:
    x_np, _ = data()
    x_0 = make(xp, x_np, dtype)
    t = xp.asarray(T, device=compat.device(x_0))
    results = {
        "noise": diffcore.standard_normal_like(x_0, **source(xp, 0)),
        "q_sample": diffcore.q_sample(SCHEDULE, x_0, t, **source(xp, 1)),
        "q_posterior_sample": diffcore.q_posterior_sample(
            SCHEDULE, x_0, x_0, 3, **source(xp, 2)
        ),
    }
    for name, result in results.items():
        assert compat.array_namespace(result) is compat.array_namespace(x_0), name
        assert compat.device(result) == compat.device(x_0), name
        assert result.dtype == x_0.dtype, name
        assert tuple(result.shape) == tuple(x_0.shape), name
        assert np.isfinite(to_numpy(result)).all(), name


def test_same_seed_same_noise(xp: ModuleType) -> None:
    x = make(xp, np.zeros((3, 5)))
    first = to_numpy(diffcore.standard_normal_like(x, **source(xp, 11)))
    again = to_numpy(diffcore.standard_normal_like(x, **source(xp, 11)))
    other = to_numpy(diffcore.standard_normal_like(x, **source(xp, 12)))
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_noise_is_standard_normal(xp: ModuleType) -> None:
    x = make(xp, np.zeros((200, 50)))
    noise = to_numpy(diffcore.standard_normal_like(x, **source(xp, 3)))
    # 10^4 draws: the mean's standard error is 0.01, the variance's 0.014.
    assert abs(noise.mean()) < 0.05
    assert abs(noise.var() - 1) < 0.07


@pytest.mark.parametrize("t", [7, T], ids=["int", "array"])
def test_backends_agree_with_numpy_in_float32(xp: ModuleType, t: Any) -> None:
    x_np, noise_np = (v.astype(np.float32) for v in data())
    x_0, noise = make(xp, x_np), make(xp, noise_np)
    t_xp = t if isinstance(t, int) else xp.asarray(t, device=compat.device(x_0))
    cases = [
        (diffcore.q_sample(SCHEDULE, x_0, t_xp, noise), (x_np, t, noise_np)),
        (
            diffcore.q_posterior_sample(SCHEDULE, x_0, noise, t_xp, x_0),
            (x_np, noise_np, t, x_np),
        ),
    ]
    expected = [
        diffcore.q_sample(SCHEDULE, *cases[0][1]),
        diffcore.q_posterior_sample(SCHEDULE, *cases[1][1]),
    ]
    for (result, _), reference in zip(cases, expected, strict=True):
        np.testing.assert_allclose(to_numpy(result), reference, rtol=0, atol=1e-6)


def test_q_sample_draws_the_noise_it_is_given(xp: ModuleType) -> None:
    x_0 = make(xp, data()[0])
    noise = diffcore.standard_normal_like(x_0, **source(xp, 5))
    drawn = diffcore.q_sample(SCHEDULE, x_0, 500, **source(xp, 5))
    given = diffcore.q_sample(SCHEDULE, x_0, 500, noise)
    np.testing.assert_array_equal(to_numpy(drawn), to_numpy(given))


def test_noise_and_generator_together_are_refused(xp: ModuleType) -> None:
    x_0 = make(xp, data()[0])
    with pytest.raises(TypeError, match="pass noise or a source of randomness"):
        diffcore.q_sample(SCHEDULE, x_0, 5, x_0, **source(xp, 1))


def test_linear_writes_into_out(xp: ModuleType) -> None:
    x_np, y_np = data()
    x, y = make(xp, x_np, "float64"), make(xp, y_np, "float64")
    backend = _backends.backend_for(x)
    expected = 0.5 * x_np - 2.0 * y_np
    for out in (make(xp, np.zeros_like(x_np), "float64"), x):
        if xp.__name__.startswith(("jax", "array_api_compat.dask")):
            pytest.skip(f"{xp.__name__} arrays are immutable or lazy: no out=")
        result = backend.linear(xp, [(0.5, x), (-2.0, y)], x.dtype, out)
        assert result is out
        np.testing.assert_allclose(to_numpy(out), expected, rtol=1e-15)


# -- errors name both sides ----------------------------------------------------


def test_mixing_libraries_names_both() -> None:
    torch = pytest.importorskip("torch", reason="torch is not installed")
    x_0, noise = torch.zeros(2, 3), np.zeros((2, 3), dtype=np.float32)
    with pytest.raises(TypeError, match=r"x_0 is torch\.Tensor, noise is numpy\."):
        diffcore.q_sample(SCHEDULE, x_0, 1, noise)


def test_mixing_devices_names_both() -> None:
    torch = pytest.importorskip("torch", reason="torch is not installed")
    x_0, noise = torch.zeros(2, 3), torch.zeros(2, 3, device="meta")
    with pytest.raises(ValueError, match=r"device of x_0, cpu; got meta"):
        diffcore.q_sample(SCHEDULE, x_0, 1, noise)


def test_generator_of_another_library_is_refused() -> None:
    torch = pytest.importorskip("torch", reason="torch is not installed")
    with pytest.raises(TypeError, match=r"torch tensors; got numpy\.random"):
        diffcore.standard_normal_like(torch.zeros(2), np.random.default_rng(0))
    with pytest.raises(TypeError, match=r"numpy arrays; got torch\._C\.Generator"):
        diffcore.standard_normal_like(np.zeros(2), torch.Generator())
    with pytest.raises(TypeError, match="key is JAX's source of randomness"):
        diffcore.standard_normal_like(np.zeros(2), key=0)


def test_missing_backend_names_the_library_and_what_is_installed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    torch = pytest.importorskip("torch", reason="torch is not installed")
    monkeypatch.setattr(_backends, "_entry_points", lambda: [])
    _backends.reset()
    try:
        x_0 = torch.zeros(2, 3)
        # The generic path still computes when the noise is given ...
        assert diffcore.q_sample(SCHEDULE, x_0, 1, x_0).shape == (2, 3)
        # ... and says what is missing when it is not.
        with pytest.raises(
            TypeError,
            match=r"for torch arrays \(installed: array_api_strict, dask, jax, numpy\)",
        ):
            diffcore.q_sample(SCHEDULE, x_0, 1, generator=0)
    finally:
        _backends.reset()


def test_jax_without_a_key_is_refused() -> None:
    pytest.importorskip("jax", reason="jax is not installed")
    import jax.numpy as jnp

    with pytest.raises(TypeError, match="key must be a JAX PRNG key"):
        diffcore.standard_normal_like(jnp.zeros(3))


# -- a third party registers a backend through an entry point ------------------

FAKE_BACKEND = """
import numpy as np
from diffcore import Backend


class OnesBackend(Backend):
    name = "numpy"
    calls = 0

    def standard_normal(self, x, generator):
        return np.ones_like(x)

    def linear(self, xp, terms, dtype, out=None):
        type(self).calls += 1
        return super().linear(xp, terms, dtype, out)


class NotABackend:
    pass
"""


def install_fake(root: Path, entry: str) -> None:
    """A distribution in root whose entry point registers ``numpy``."""
    (root / "fake_diffcore_backend.py").write_text(textwrap.dedent(FAKE_BACKEND))
    info = root / "fake_diffcore_backend-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: fake-diffcore-backend\nVersion: 0.1\n"
    )
    (info / "entry_points.txt").write_text(f"[diffcore.backends]\nnumpy = {entry}\n")


@pytest.fixture
def fresh_registry() -> Any:
    _backends.reset()
    yield
    _backends.reset()
    sys.modules.pop("fake_diffcore_backend", None)


def test_third_party_backend_registers_by_entry_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_registry: None
) -> None:
    install_fake(tmp_path, "fake_diffcore_backend:OnesBackend")
    monkeypatch.syspath_prepend(str(tmp_path))
    x_0 = np.zeros((2, 3))
    x_t = diffcore.q_sample(SCHEDULE, x_0, 999, generator=0)
    expected = SCHEDULE._table("one_minus_alphas_cumprod")[999] ** 0.5
    np.testing.assert_allclose(x_t, np.full((2, 3), expected), rtol=1e-15)
    backend = _backends.backend_for(x_0)
    assert type(backend).__name__ == "OnesBackend"
    assert type(backend).calls == 1  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", [1, b"numpy"])
def test_a_backend_name_must_be_a_string(name: Any) -> None:
    with pytest.raises(TypeError, match="name must be a str"):
        diffcore.Backend(name)


def test_entry_point_that_is_no_backend_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_registry: None
) -> None:
    install_fake(tmp_path, "fake_diffcore_backend:NotABackend")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(TypeError, match="fake_diffcore_backend:NotABackend in group"):
        diffcore.q_sample(SCHEDULE, np.zeros(2), 1, np.zeros(2))


@pytest.mark.parametrize(
    ("entry", "cause"),
    [
        ("fake_diffcore_backend:Missing", "AttributeError"),
        ("no_such_module_here:Backend", "ModuleNotFoundError"),
    ],
)
def test_entry_point_that_fails_to_load_is_named(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fresh_registry: None,
    entry: str,
    cause: str,
) -> None:
    # The loader's own AttributeError or ModuleNotFoundError came out bare.
    install_fake(tmp_path, entry)
    monkeypatch.syspath_prepend(str(tmp_path))
    group = "in group 'diffcore.backends'"
    match = f"entry point numpy = {entry} {group} failed to load: {cause}"
    with pytest.raises(ImportError, match=match):
        diffcore.q_sample(SCHEDULE, np.zeros(2), 1, np.zeros(2))


# -- the device-table cache is bounded, thread-safe and keyed per dtype --------


def test_table_cache_is_thread_safe_and_keyed_per_device_and_dtype() -> None:
    torch = pytest.importorskip("torch", reason="torch is not installed")
    schedule = diffcore.Schedule.cosine(50)
    dtypes = [torch.float16, torch.bfloat16, torch.float32, torch.float64]
    t = torch.arange(50)
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for _ in range(20):
                x = torch.ones(50, dtype=dtypes[i % 4])
                x_t = diffcore.q_sample(schedule, x, t, torch.zeros_like(x))
                expected = torch.as_tensor(np.array(schedule.sqrt_alphas_cumprod))
                torch.testing.assert_close(x_t.double(), expected.to(x.dtype).double())
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []

    device = torch.device("cpu")
    from array_api_compat import torch as xp

    single = schedule._on_device("sqrt_alphas_cumprod", xp, device, torch.float32)
    double = schedule._on_device("sqrt_alphas_cumprod", xp, device, torch.float64)
    assert single.dtype == torch.float32 and double.dtype == torch.float64
    assert schedule._on_device("sqrt_alphas_cumprod", xp, device, torch.float32) is (
        single
    )
    assert len(schedule._cache) <= 64


# -- torch: gradients, torch.compile, meta tensors -----------------------------


def torch_or_skip() -> Any:
    return pytest.importorskip("torch", reason="torch is not installed")


def test_torch_gradients_flow_through_q_sample_and_posterior() -> None:
    torch = torch_or_skip()
    gen = torch.Generator().manual_seed(0)
    x_0, noise, x_t = (
        torch.randn(3, 2, dtype=torch.float64, generator=gen)
        .to(TORCH_DEVICE)
        .requires_grad_()
        for _ in range(3)
    )
    t = torch.tensor([1, 400, 999], device=TORCH_DEVICE)

    def closed_form(x_0: Any, noise: Any) -> Any:
        return diffcore.q_sample(SCHEDULE, x_0, t, noise)

    def posterior(x_0: Any, x_t: Any) -> Any:
        return diffcore.q_posterior_mean_variance(SCHEDULE, x_0, x_t, t)[0]

    def posterior_draw(x_0: Any, x_t: Any, noise: Any) -> Any:
        return diffcore.q_posterior_sample(SCHEDULE, x_0, x_t, 7, noise)

    assert torch.autograd.gradcheck(closed_form, (x_0, noise))
    assert torch.autograd.gradcheck(posterior, (x_0, x_t))
    assert torch.autograd.gradcheck(posterior_draw, (x_0, x_t, noise))


def _forward_and_back(x_0: Any, noise: Any, t: Any) -> Any:
    """q_sample then q_posterior_sample: the pair the docs say compiles."""
    x_t = diffcore.q_sample(SCHEDULE, x_0, t, noise)
    return diffcore.q_posterior_sample(SCHEDULE, x_0, x_t, t, noise)


@pytest.mark.compile
@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")
@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_torch_compile_fullgraph_q_sample_and_posterior_step(dtype: str) -> None:
    # 16-bit samples failed to trace: the default linear's np.errstate.
    torch = torch_or_skip()
    x_0, noise = (
        torch.as_tensor(v, device=TORCH_DEVICE).to(getattr(torch, dtype))
        for v in data()
    )
    t = torch.as_tensor(T, device=TORCH_DEVICE)

    # The first call of a library's arrays loads its backend and fills the
    # schedule's caches; that happens eagerly, outside the compiled region.
    eager = _forward_and_back(x_0, noise, t)
    torch._dynamo.reset()
    compiled = torch.compile(_forward_and_back, fullgraph=True, backend="inductor")
    got = compiled(x_0, noise, t)
    assert got.dtype == x_0.dtype
    # Inductor fuses the two calls: a 16-bit rounding may differ by one ulp.
    exact = {"rtol": 0.0, "atol": 1e-6} if dtype == "float32" else {}
    torch.testing.assert_close(got, eager, **exact)
    explanation = torch._dynamo.explain(_forward_and_back)(x_0, noise, t)
    assert explanation.graph_break_count == 0, explanation.break_reasons


@pytest.mark.compile
@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")
def test_torch_compile_fullgraph_takes_a_python_int_timestep() -> None:
    # An int t failed to trace: its cached Steps set a NumPy flag.
    torch = torch_or_skip()
    x_0, noise = (
        torch.as_tensor(v, dtype=torch.float32, device=TORCH_DEVICE) for v in data()
    )
    eager = {t: _forward_and_back(x_0, noise, t) for t in (7, 11)}
    torch._dynamo.reset()
    from diffcore import _arrays

    _arrays._INT_STEPS.pop((11, 0), None)  # one cached int, one fresh
    compiled = torch.compile(_forward_and_back, fullgraph=True, backend="inductor")
    # fullgraph=True raises on any graph break; torch specialises on each int.
    for t, want in eager.items():
        torch.testing.assert_close(compiled(x_0, noise, t), want, rtol=0, atol=1e-6)


def test_meta_tensors_pass_through() -> None:
    torch = torch_or_skip()
    x_0 = torch.empty(8, 3, 16, 16, device="meta", dtype=torch.bfloat16)
    t = torch.zeros(8, dtype=torch.int64, device="meta")
    results = [
        diffcore.q_sample(SCHEDULE, x_0, t, generator=0),
        diffcore.q_posterior_sample(SCHEDULE, x_0, x_0, t, x_0),
        diffcore.q_posterior_mean_variance(SCHEDULE, x_0, x_0, 5)[0],
    ]
    for result in results:
        assert result.device.type == "meta"
        assert result.dtype == torch.bfloat16
        assert result.shape == x_0.shape


# -- JAX: jit and vmap, keys ---------------------------------------------------


def jax_or_skip() -> Any:
    jax = pytest.importorskip("jax", reason="jax is not installed")
    jax.config.update("jax_enable_x64", True)
    return jax


def test_jax_jit_over_core_functions() -> None:
    jax = jax_or_skip()
    import jax.numpy as jnp

    x_np, noise_np = (v.astype(np.float32) for v in data())
    x_0, noise, t = jnp.asarray(x_np), jnp.asarray(noise_np), jnp.asarray(T)

    @jax.jit
    def step(x_0: Any, noise: Any, t: Any, key: Any) -> Any:
        x_t = diffcore.q_sample(SCHEDULE, x_0, t, noise)
        mean = diffcore.q_posterior_mean_variance(SCHEDULE, x_0, x_t, t)[0]
        return mean, diffcore.q_posterior_sample(SCHEDULE, x_0, x_t, t, key=key)

    key = jax.random.key(0)
    mean, draw = step(x_0, noise, t, key)
    x_t = diffcore.q_sample(SCHEDULE, x_np, T, noise_np)
    expected = diffcore.q_posterior_mean_variance(SCHEDULE, x_np, x_t, T)[0]
    np.testing.assert_allclose(np.asarray(mean), expected, atol=1e-6)
    again = step(x_0, noise, t, key)[1]
    np.testing.assert_array_equal(np.asarray(draw), np.asarray(again))


def test_jax_traced_arrays_mix_with_concrete_ones() -> None:
    """A tracer has no device; closing over a concrete array is plain JAX."""
    jax = jax_or_skip()
    import jax.numpy as jnp

    x_np, noise_np = (v.astype(np.float32) for v in data())
    x_0, noise = jnp.asarray(x_np), jnp.asarray(noise_np)
    want = diffcore.q_sample(SCHEDULE, x_np, 5, noise_np)
    got = jax.jit(lambda a: diffcore.q_sample(SCHEDULE, a, 5, noise))(x_0)
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-6)
    got = jax.vmap(lambda a: diffcore.q_sample(SCHEDULE, a, 5, noise[0]))(x_0)
    expected = diffcore.q_sample(
        SCHEDULE, x_np, 5, np.broadcast_to(noise_np[0], x_np.shape)
    )
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-6)

    def loss(p: Any) -> Any:
        return diffcore.diffusion_loss(SCHEDULE, p, x_0, 5, noise).sum()

    # The loss is a mean of squares of (p - noise) per sample: its gradient
    # is 2 (p - noise) / (elements per sample).
    p = noise + 1.0
    grad = jax.grad(loss)(p)
    per_sample = int(np.prod(x_np.shape[1:]))
    np.testing.assert_allclose(np.asarray(grad), 2.0 / per_sample, rtol=1e-5)


def test_jax_jit_diffusion_loss_gathers_weights_on_the_device() -> None:
    jax = jax_or_skip()
    import jax.numpy as jnp

    x_np, noise_np = (v.astype(np.float32) for v in data())
    prediction_np = noise_np[::-1].copy()
    t = np.asarray(T)
    options = {"weighting": "min_snr", "gamma": 3.0, "prediction_type": "v"}
    loss = jax.jit(
        lambda p, x, t, e: diffcore.diffusion_loss(SCHEDULE, p, x, t, e, **options)
    )
    args = (prediction_np, x_np, t, noise_np)
    got = loss(*(jnp.asarray(a) for a in args))
    want = diffcore.diffusion_loss(SCHEDULE, *args, **options)
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5)
    # A timestep outside [0, T) poisons its sample's loss under jit (the eps
    # target gathers nothing, so only the weight can carry the NaN).
    eps_loss = jax.jit(
        lambda p, x, t, e: diffcore.diffusion_loss(
            SCHEDULE, p, x, t, e, weighting="min_snr"
        )
    )
    bad_t = np.array([0, 10, 10**6, 999])
    bad = eps_loss(*(jnp.asarray(a) for a in (prediction_np, x_np, bad_t, noise_np)))
    assert np.isnan(np.asarray(bad)).tolist() == [False, False, True, False]


def test_jax_vmap_over_core_functions() -> None:
    jax = jax_or_skip()
    import jax.numpy as jnp

    x_np, noise_np = data()
    x_0, noise = jnp.asarray(x_np), jnp.asarray(noise_np)

    def one(x_0: Any, noise: Any, t: Any) -> Any:
        return diffcore.q_sample(SCHEDULE, x_0[None], t[None], noise[None])[0]

    batched = jax.vmap(one)(x_0, noise, jnp.asarray(T))
    expected = diffcore.q_sample(SCHEDULE, x_np, T, noise_np)
    np.testing.assert_allclose(np.asarray(batched), expected, rtol=1e-12)

    keys = jax.random.split(jax.random.key(1), 4)
    draws = jax.vmap(lambda k: diffcore.standard_normal_like(x_0[0], key=k))(keys)
    assert draws.shape == (4, *x_0.shape[1:])


# -- Dask: lazy, chunk by chunk ------------------------------------------------


def test_dask_q_sample_stays_lazy() -> None:
    da = pytest.importorskip("dask.array", reason="dask is not installed")
    from dask.callbacks import Callback

    started: list[str] = []

    class Count(Callback):  # type: ignore[misc]
        def _start(self, dsk: Any) -> None:
            started.append("compute")

    x_0 = da.ones((64, 32), chunks=(16, 32), dtype="float32")
    with Count():
        x_t = diffcore.q_sample(SCHEDULE, x_0, np.full(64, 500), generator=0)
    assert started == []
    assert isinstance(x_t, da.Array)
    assert x_t.chunks == x_0.chunks
    assert x_t.dtype == np.float32


def test_dask_noising_larger_than_memory_runs_chunk_by_chunk() -> None:
    pytest.importorskip("dask.array", reason="dask is not installed")
    code = textwrap.dedent(
        """
        import tracemalloc
        import dask, dask.array as da, numpy as np, diffcore

        s = diffcore.Schedule.linear(1000)
        x_0 = da.ones((25_000, 2_000), chunks=(500, 2_000), dtype="float32")
        total = x_0.nbytes
        x_t = diffcore.q_sample(s, x_0, 500, generator=0)
        tracemalloc.start()
        with dask.config.set(scheduler="synchronous"):
            second_moment = float((x_t.astype("float64") ** 2).mean().compute())
        peak = tracemalloc.get_traced_memory()[1]
        expected = 1.0
        print(total, peak, second_moment, expected)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    total, peak, second_moment, expected = map(float, out.stdout.split())
    assert total == 200e6
    # Six chunks of 4 MB at most are alive at once: far below the 200 MB total.
    assert peak < total / 5, f"peak {peak / 1e6:.0f} MB of {total / 1e6:.0f} MB"
    assert abs(second_moment - expected) < 1e-3


def test_jax_retracing_does_not_reuse_a_cached_tracer() -> None:
    jax = pytest.importorskip("jax", reason="jax is not installed")
    jnp = jax.numpy
    schedule = diffcore.Schedule.cosine(1000)
    step = jax.jit(lambda x, t, e: diffcore.q_sample(schedule, x, t, e))
    for batch in (4, 8):  # the second shape retraces
        x = jnp.ones((batch, 3), jnp.float32)
        out = step(x, jnp.arange(batch), x)
        expected = schedule.sqrt_alphas_cumprod[:batch]
        expected = expected + schedule.sqrt_one_minus_alphas_cumprod[:batch]
        np.testing.assert_allclose(np.asarray(out)[:, 0], expected, rtol=1e-6)
    vmapped = jax.vmap(lambda x, t, e: diffcore.q_sample(schedule, x, t, e))
    x = jnp.ones((2, 3), jnp.float32)
    assert vmapped(x, jnp.arange(2), x).shape == (2, 3)


def test_jax_default_32_bit_mode_gives_no_warning() -> None:
    pytest.importorskip("jax", reason="jax is not installed")
    code = (
        "import jax, jax.numpy as jnp, numpy as np, diffcore\n"
        "s = diffcore.Schedule.cosine(100)\n"
        "x = jnp.ones((4, 3))\n"
        "f = jax.jit(lambda x, t, e: diffcore.q_sample(s, x, t, e))\n"
        "for t in (jnp.arange(4), np.arange(4)):\n"
        "    diffcore.q_sample(s, x, t, x)\n"
        "    f(x, jnp.asarray(t), x)\n"
    )
    subprocess.run([sys.executable, "-W", "error", "-c", code], check=True)


def test_loops_take_their_seeded_source_from_the_backend(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    torch = pytest.importorskip("torch", reason="torch is not installed")
    from diffcore._backends import backend_for

    x = torch.zeros(2, 3, dtype=torch.float64)
    backend = backend_for(x)
    made: list[int] = []
    seeded = backend.seeded

    def counted(x: Any, seed: int) -> Any:
        made.append(seed)
        return seeded(x, seed)

    monkeypatch.setattr(backend, "seeded", counted)
    score = lambda x, sigma: 0 * x  # noqa: E731
    diffcore.annealed_langevin(score, x, [1.0, 0.5], 0.1, 2, generator=5)
    assert made == [5]  # one source for the whole loop, from the backend


def test_torch_func_vmap_and_grad_over_core_functions() -> None:
    """Inside torch.func transforms values are not read: the device path runs."""
    torch = pytest.importorskip("torch", reason="torch is not installed")
    schedule = diffcore.Schedule.linear(10)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(4, 3, dtype=torch.float64, generator=gen)
    noise = torch.randn(4, 3, dtype=torch.float64, generator=gen)
    t = torch.tensor([1, 2, 3, 4])

    def q(a: Any, tt: Any, n: Any) -> Any:
        return diffcore.q_sample(schedule, a, tt, n)

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no slow batching fallback either
        got = torch.func.vmap(q)(x, t, noise)
        steps = torch.func.vmap(
            lambda a, tt: diffcore.ddim_step(schedule, a, a, tt, tt - 1).x_prev
        )(x, t)
    torch.testing.assert_close(got, q(x, t, noise), rtol=1e-15, atol=0)
    for i in range(4):
        row = slice(i, i + 1)
        want = diffcore.ddim_step(schedule, x[row], x[row], int(t[i]), int(t[i]) - 1)
        torch.testing.assert_close(steps[row], want.x_prev, rtol=1e-14, atol=1e-15)

    def loss(p: Any) -> Any:
        return diffcore.diffusion_loss(schedule, p, x, t, noise).sum()

    # the mean over 3 elements of (p - noise)^2 per sample
    grad = torch.func.grad(loss)(x)
    torch.testing.assert_close(grad, 2.0 * (x - noise) / 3.0, rtol=1e-14, atol=1e-15)


def test_a_0d_device_timestep_keeps_the_samples_shape() -> None:
    """A traced or vmapped 0-d t gathers one value of shape (), not (1,)."""
    schedule = diffcore.Schedule.linear(10)
    want = diffcore.q_sample(schedule, np.ones(4), np.arange(4), np.ones(4))
    torch = pytest.importorskip("torch", reason="torch is not installed")
    ones = torch.ones(4, dtype=torch.float64)
    got = torch.func.vmap(lambda x, t: diffcore.q_sample(schedule, x, t, x))(
        ones, torch.arange(4)
    )
    assert got.shape == (4,)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-15)
    jax = jax_or_skip()
    import jax.numpy as jnp

    one = jnp.asarray(1.0)
    got = jax.jit(lambda x, t: diffcore.q_sample(schedule, x, t, x))(
        one, jnp.asarray(2)
    )
    assert got.shape == ()
    np.testing.assert_allclose(float(got), want[2], rtol=1e-15)
