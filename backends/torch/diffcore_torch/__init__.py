"""PyTorch backend for diffcore.

Registered under the entry-point group ``diffcore.backends`` as ``torch``;
diffcore loads it the first time a tensor reaches the core.  It supplies

* noise from ``torch.randn`` with a ``torch.Generator`` (or an int seed) on the
  tensor's device, dtype included (float16 and bfloat16 are drawn directly);
* the linear combinations of the hot paths as one ``mul`` followed by fused
  in-place ``add_(alpha=)``/``addcmul_`` kernels on its fresh result, or
  written into ``out``; the allocating form is differentiable and traces
  under ``torch.compile(fullgraph=True)`` (blocking for cache was measured
  slower in eager torch: each op costs microseconds; docs/benchmarks.md);
* coefficients gathered on the host wrapped without a copy (``from_numpy``);
* table placement that, inside ``torch.compile``, hands the cached device
  table to the graph as a constant instead of tracing the cache's lock.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from diffcore import Backend
from diffcore._backends import check_distinct

__all__ = ["TorchBackend"]

Terms = Sequence[tuple[Any, torch.Tensor]]


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    if dtype in (torch.float16, torch.bfloat16):
        return torch.float32
    return dtype


def _traced_table(schedule: Any, name: str, device: Any, dtype: Any) -> Any:
    """Table ``name`` built in the graph from the float64 host table.

    Inside a compiled region the schedule's cache (an OrderedDict under a
    threading.Lock) cannot be traced; the host table (T float64 values) is
    turned into a constant of the graph instead, rounded once to ``dtype``.
    """
    host = schedule._table(name)
    return torch.as_tensor(host, device=device).to(dtype)


class TorchBackend(Backend):
    """Noise, fused kernels and table placement for ``torch.Tensor``."""

    name = "torch"

    def seeded(self, x: torch.Tensor, seed: int) -> torch.Generator | None:
        if x.is_meta:
            return None  # meta tensors hold no values: no generator to seed
        return torch.Generator(device=x.device).manual_seed(seed)

    def standard_normal(self, x: torch.Tensor, generator: Any) -> torch.Tensor:
        if isinstance(generator, int) and not isinstance(generator, bool):
            if x.device.type == "meta":
                generator = None
            else:
                generator = torch.Generator(device=x.device).manual_seed(generator)
        elif generator is not None and not isinstance(generator, torch.Generator):
            msg = (
                "generator must be None, an int seed or a torch.Generator for "
                f"torch tensors; got {type(generator).__module__}."
                f"{type(generator).__name__}"
            )
            raise TypeError(msg)
        if generator is not None and generator.device.type != x.device.type:
            msg = (
                f"generator must be on x's device type, {x.device.type}; got a "
                f"generator on {generator.device}"
            )
            raise ValueError(msg)
        return torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)

    def device(self, x: torch.Tensor) -> Any:
        return x.device

    def from_host(self, xp: Any, values: np.ndarray[Any, Any], x: torch.Tensor) -> Any:
        if x.is_cpu and not torch.compiler.is_compiling():
            return torch.from_numpy(values)
        return torch.as_tensor(values, device=x.device)

    def linear(
        self,
        xp: Any,
        terms: Terms,
        dtype: Any,
        out: torch.Tensor | None = None,
    ) -> torch.Tensor:
        work = _compute_dtype(dtype)
        (coef, first), rest = terms[0], terms[1:]
        if out is not None:
            _check_out(terms, out)
            _check_distinct(out)
            if (
                work != dtype
                or torch.compiler.is_compiling()
                or self.clobbers(out, terms)
            ):
                # Formed apart, unfused: float32 may differ from the fused
                # in-place path by an ulp (NumPy's paths agree bit for bit).
                return super().linear(xp, terms, dtype, out)
            _combine(terms, out)
            return out

        if _transformed():
            # torch.func has no batching rule for addcmul_: out-of-place ops.
            return super().linear(xp, terms, dtype)
        # The first product is a fresh tensor, so the sums may update it in
        # place: no out= kernel, hence differentiable and traceable as well.
        total = torch.mul(first if first.dtype == work else first.to(work), coef)
        for coef, array in rest:
            if isinstance(coef, float):
                total.add_(array, alpha=coef)
            else:
                total.addcmul_(array, coef)
        return total if total.dtype == dtype else total.to(dtype)

    def tracing(self) -> bool:
        return bool(torch.compiler.is_compiling())

    def readable(self, x: torch.Tensor) -> bool:
        return x.is_cpu and not torch.compiler.is_compiling() and not _transformed()

    def host(self, x: torch.Tensor) -> np.ndarray[Any, Any] | None:
        if not self.readable(x):
            return None
        return x.detach().numpy() if x.requires_grad else x.numpy()

    def may_share_memory(self, a: torch.Tensor, b: torch.Tensor) -> bool:
        # Overlapping address ranges (as numpy.may_share_memory): tensors on
        # different storages may still share memory (from_numpy of two views).
        if a.device != b.device:
            return False
        if a.device.type == "meta" or _transformed():
            return True
        return _overlap(_extent(a), b)

    def clobbers(self, out: torch.Tensor, terms: Terms) -> bool:
        # Backend.clobbers with out's address range found once.
        if out.is_meta or _transformed():
            return True
        span, device = _extent(out), out.device
        for index, (_, array) in enumerate(terms):
            if index == 0 and array is out:
                continue
            if array.device == device and _overlap(span, array):
                return True
        return False

    def total(self, xp: Any, x: torch.Tensor) -> float | None:
        if not self.readable(x):
            return None
        return float((x.detach() if x.requires_grad else x).sum())

    def table(self, schedule: Any, name: str, xp: Any, device: Any, dtype: Any) -> Any:
        if torch.compiler.is_compiling():
            return _traced_table(schedule, name, device, dtype)
        return super().table(schedule, name, xp, device, dtype)


# Inside a torch.func transform (vmap, grad, jacrev, ...) tensors have no
# data pointer to compare and no values to read on the host, even tensors
# from outside it: the interpreter stack is not empty there.
_interpreters = torch._C._functorch.peek_interpreter_stack


def _transformed() -> bool:
    return _interpreters() is not None


def _overlap(span: tuple[int, int], x: torch.Tensor) -> bool:
    """Whether x's address range meets ``span``, another tensor's extent."""
    start, end = _extent(x)
    return start < span[1] and span[0] < end


def _extent(x: torch.Tensor) -> tuple[int, int]:
    """The first and one-past-last byte addresses that x's elements occupy."""
    start = x.data_ptr()
    if x.is_contiguous():
        return start, start + x.numel() * x.element_size()
    if x.numel() == 0:
        return start, start
    pairs = zip(x.shape, x.stride(), strict=True)
    last = sum((size - 1) * stride for size, stride in pairs)
    return start, start + (last + 1) * x.element_size()


def _check_out(terms: Terms, out: torch.Tensor) -> None:
    """out= kernels record no gradient: refuse out or inputs that need one."""
    if not torch.is_grad_enabled():
        return
    if out.requires_grad or any(
        array.requires_grad or getattr(coef, "requires_grad", False)
        for coef, array in terms
    ):
        msg = (
            "out must be None when out or an input requires grad: writing into "
            "out is not differentiable (drop out=, or run under torch.no_grad())"
        )
        raise ValueError(msg)


def _check_distinct(out: torch.Tensor) -> None:
    """Refuse an out whose elements share memory (an expanded view)."""
    if not out.is_contiguous():
        check_distinct(tuple(out.shape), out.stride())


# TODO(#7): two passes (2.2-2.4 copies at 16 MiB, target 1.6); eager torch has
# no one-kernel a*x + b*y with per-sample a, b (lerp is one kernel, 1.5 copies,
# but only forms (1 - w) x + w y).
def _combine(terms: Terms, out: torch.Tensor) -> None:
    """out = c_0 x_0, then out += c_i x_i with fused kernels, in place."""
    (coef, first), rest = terms[0], terms[1:]
    torch.mul(first, coef, out=out)
    for coef, array in rest:
        if isinstance(coef, float):
            out.add_(array, alpha=coef)
        else:
            out.addcmul_(array, coef)
