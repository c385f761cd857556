"""The Gaussian-mixture base in the fused flow module: p(z) = Σ_c π_c N(z; μ_c, diag e^{2 s_c}) with
π = softmax(w) (000 eq. 73 with a mixture for p_Z, its log-sum-exp in the stable form of eq. 95).

Two generated kernels carry all the math: ``diagonal_gaussian_logpdf`` gives each component's
per-sample log-density a[:, c] (and its VJP), ``mixture_nll`` the batch NLL from the table a and
the logits w (and ∂L/∂a, ∂L/∂w). This module only loops over the components and moves columns.
"""

from __future__ import annotations

from layergen.runtime.flow_architecture import FlowArchitecture


def _component_table(arch: FlowArchitecture, latent: str) -> list[str]:
    """ma[:, c] = log N(latent; μ_c, diag e^{2 s_c}) for every component c."""
    return [f"for _component in range({arch.components}):",
            f"    k_gauss.forward({latent}, mix_mu[_component], mix_s[_component], mq)",
            "    column_into(mq, ma, _component)"]


def nll_and_gradient(arch: FlowArchitecture, latent: str, g_latent: str) -> list[str]:
    """loss = the mixture's NLL of the batch; ∂L/∂μ, ∂L/∂s, ∂L/∂w, and ∂L/∂latent into ``g_latent``."""
    return _component_table(arch, latent) + [
        "loss = k_mix.loss_grad(ma, mix_w, gma, g_mix_w)",
        f"fill_zero({g_latent})",
        f"for _component in range({arch.components}):",
        "    spread_column(gma, _component, gmq)",
        f"    k_gauss.vjp({latent}, mix_mu[_component], mix_s[_component], gmq, mgz, g_mix_mu[_component], g_mix_s[_component])",
        f"    add_into(mgz, {g_latent})"]


def per_sample(arch: FlowArchitecture, latent: str) -> tuple[list[str], str]:
    """Lines before the per-sample loop, and the expression of −log p_Z of sample _i."""
    return _component_table(arch, latent), "k_mix.loss(ma[_i:_i + 1], mix_w)"
