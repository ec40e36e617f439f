"""Small property helpers for the balancing-method tests (torchjd-style), and :func:`declaring`,
which selects the registry entries a property test runs on by what their classes declare."""

from __future__ import annotations

from typing import Any

import torch

__all__ = [
    "assert_close",
    "assert_parallel",
    "assert_shape_and_finite",
    "cosine",
    "declaring",
    "random_grads",
]


def declaring(registry: Any, **capabilities: object) -> list[str]:
    """Sorted names of the entries of ``registry`` whose class attributes have the given values,
    e.g. ``declaring(METHODS, kind="gradient", permutation_invariant=True)``: a test parametrised
    with it runs on every entry that declares the property, and on nothing else, with no list of
    names to keep up to date. A misspelt attribute raises ``AttributeError``."""
    return sorted(
        name for name, cls in registry.items()
        if all(getattr(cls, attribute) == value for attribute, value in capabilities.items())
    )


def random_grads(
    n_tasks: int, n_params: int, seed: int = 0, dtype: torch.dtype = torch.float64, scale: float = 1.0
) -> torch.Tensor:
    """A reproducible T × P Gaussian matrix (rows with random norms, so conflicts are common)."""
    generator = torch.Generator().manual_seed(seed)
    rows = torch.randn(n_tasks, n_params, generator=generator, dtype=torch.float64)
    norms = torch.exp(torch.randn(n_tasks, 1, generator=generator, dtype=torch.float64))
    return (scale * rows * norms).to(dtype)


def assert_shape_and_finite(direction: torch.Tensor, grads: torch.Tensor) -> None:
    """``direction`` is a (P,) tensor with ``grads``' dtype and device and no NaN/inf."""
    assert isinstance(direction, torch.Tensor), f"expected a tensor, got {type(direction).__name__}"
    assert direction.shape == (grads.shape[1],), (
        f"expected shape ({grads.shape[1]},), got {tuple(direction.shape)}"
    )
    assert direction.dtype == grads.dtype, f"expected dtype {grads.dtype}, got {direction.dtype}"
    assert direction.device == grads.device
    assert bool(torch.isfinite(direction).all()), f"non-finite direction: {direction}"


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    a64, b64 = a.to(torch.float64), b.to(torch.float64)
    return float(a64 @ b64 / (torch.linalg.vector_norm(a64) * torch.linalg.vector_norm(b64)))


def assert_parallel(direction: torch.Tensor, reference: torch.Tensor, tol: float = 1e-6) -> None:
    """``direction`` is non-zero and points the same way as ``reference`` (cosine ≥ 1 − tol)."""
    assert float(torch.linalg.vector_norm(direction)) > 0.0, "direction is zero"
    value = cosine(direction, reference)
    assert value >= 1.0 - tol, f"cosine {value} is not 1 within {tol}"


def assert_close(
    actual: torch.Tensor, expected: torch.Tensor, rtol: float = 1e-7, atol: float = 1e-9
) -> None:
    """Element-wise closeness with a message showing the largest deviation."""
    actual64, expected64 = actual.to(torch.float64), expected.to(torch.float64)
    deviation = float((actual64 - expected64).abs().max()) if actual64.numel() else 0.0
    assert torch.allclose(actual64, expected64, rtol=rtol, atol=atol), (
        f"max deviation {deviation:.3e}\nactual   {actual64}\nexpected {expected64}"
    )
