"""K-FAC's one-off curvature estimate, to start Q(λ) near (F + γI)⁻¹ instead of init_scale·I.

For a layer whose per-example gradient is Σ_rows g āᵀ, K-FAC approximates its Fisher block by
G ⊗ A with A = E[ā āᵀ] (inputs, bias-augmented) and G = E[g gᵀ] (output gradients at targets
drawn from the model), and its damped inverse by (G + γ_G I)⁻¹ ⊗ (A + γ_A I)⁻¹ (Martens &
Grosse, 2015, §6.3). Q(λ) of a Kronecker structure can equal that exactly, so the auxiliary
loop starts from it rather than from the identity (`FishLeg(q_init="kfac")`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from fishleg.curvature.fisher import curvature_pass, model_function
from fishleg.layers import LayerAdapter
from fishleg.likelihoods import Likelihood

__all__ = ["damped_inverse_factors", "kronecker_factors"]

Layer = tuple[nn.Module, LayerAdapter]
PI_SQUARED_RANGE = (1e-24, 1e24)


def kronecker_factors(
    model: nn.Module,
    likelihood: Likelihood,
    inputs: Tensor,
    layers: Sequence[Layer],
    generator: torch.Generator | None = None,
) -> list[tuple[Tensor, Tensor] | None]:
    """K-FAC's factors (G, A) of each layer on one batch, or None for a layer whose adapter
    gives no rows (or that the batch does not reach).

    A = āᵀā / M over the layer's M input rows; G = gᵀg / N, with g the gradients of Σ r·f(x)
    at the layer's output, r ~ `likelihood.sample_output_gradient`, and N the output's rows
    (the rows the Fisher averages over), so that G ⊗ A ≈ the layer's block of F also when a
    layer sees several rows per output row (pixels, positions). inputs: (B, ...). The model
    runs on copies of its buffers, and the caller's RNG is left as it was."""
    captured: dict[int, list[tuple[Tensor, Tensor]]] = {i: [] for i in range(len(layers))}

    def recorder(index: int):
        def hook(module: nn.Module, args: tuple, output: Tensor) -> None:
            captured[index].append((args[0].detach(), output))

        return hook

    handles = [module.register_forward_hook(recorder(i)) for i, (module, _) in enumerate(layers)]
    try:
        with curvature_pass(inputs.device), torch.enable_grad():
            outputs = model_function(model, inputs)({})
            r = likelihood.sample_output_gradient(outputs.detach(), generator)
            seen = [(i, out) for i, calls in captured.items() for _, out in calls if out.requires_grad]
            grads = torch.autograd.grad(outputs, [out for _, out in seen], r, allow_unused=True)
    finally:
        for handle in handles:
            handle.remove()
    output_grads: dict[int, list[Tensor]] = {i: [] for i in captured}
    for (i, _), grad in zip(seen, grads):
        if grad is not None:
            output_grads[i].append(grad)
    factors: list[tuple[Tensor, Tensor] | None] = []
    for i, (module, adapter) in enumerate(layers):
        a_rows = [adapter.input_rows(module, x) for x, _ in captured[i]]
        g_rows = [adapter.output_rows(module, g) for g in output_grads[i]]
        if not a_rows or not g_rows or any(rows is None for rows in (*a_rows, *g_rows)):
            factors.append(None)
            continue
        a = torch.cat(a_rows).float()
        g = torch.cat(g_rows).float()
        factors.append((g.T @ g / outputs.shape[0], a.T @ a / a.shape[0]))
    return factors


def inverse_cholesky(matrix: Tensor) -> Tensor:
    """Lower-triangular L with L Lᵀ = matrix⁻¹, in float64 (the factors of a damped inverse
    span 1/γ to 1/λ_max). matrix (k, k), symmetric positive definite → (k, k) float64."""
    chol, _ = torch.linalg.cholesky_ex(matrix.double())
    lower, _ = torch.linalg.cholesky_ex(torch.cholesky_inverse(chol))
    return lower


def damped_inverse_factors(g: Tensor, a: Tensor, damping: float | Tensor) -> tuple[Tensor, Tensor]:
    """Lower-triangular L, R with L Lᵀ = (G + γ_G I)⁻¹ and R Rᵀ = (A + γ_A I)⁻¹, where
    γ_G = √γ/π, γ_A = π√γ and π² = (tr A / n) / (tr G / m): K-FAC's factored damping, under
    which (L Lᵀ) ⊗ (R Rᵀ) ≈ (G ⊗ A + γI)⁻¹. g (m, m), a (n, n) → (m, m), (n, n), float32.

    A factor that vanishes (a layer whose output gradients are all zero, a saturated unit)
    makes π infinite; π² is bounded to [1e-24, 1e24], where the product is still I/γ to well
    within float32, and the maths runs in float64 so that its sums keep that range."""
    g, a = g.double(), a.double()
    tiny = torch.finfo(torch.float64).tiny
    mean_a = a.diagonal().mean().clamp_min(tiny)
    mean_g = g.diagonal().mean().clamp_min(tiny)
    pi = torch.sqrt((mean_a / mean_g).clamp(PI_SQUARED_RANGE[0], PI_SQUARED_RANGE[1]))
    root = torch.as_tensor(damping, dtype=torch.float64, device=g.device).sqrt()
    eye_g = torch.eye(g.shape[0], device=g.device, dtype=g.dtype)
    eye_a = torch.eye(a.shape[0], device=a.device, dtype=a.dtype)
    left = inverse_cholesky(g + (root / pi) * eye_g)
    right = inverse_cholesky(a + (root * pi) * eye_a)
    balance = torch.sqrt(right.diagonal().mean() / left.diagonal().mean())
    return (left * balance).float(), (right / balance).float()
