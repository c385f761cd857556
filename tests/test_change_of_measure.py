"""Change of measure for every scalar transformer in the catalog (discovered, not listed).

Push the uniform density ½ on [−1, 1] through y = h(x; γ). With a correct inverse
log-determinant the pushed-forward density p(y) = ½ · |∂x/∂y| integrates to 1 over
[h(−1), h(1)] (000 eq. 71–72). With a correct forward log-determinant ∫_{−1}^{1} |h'(x)| dx is
the length |h(1) − h(−1)| of the image. Both integrals use Gauss–Legendre quadrature on the
generated kernels (adaptive: a sum of squares can make h' small somewhere, and then the
density has a sharp peak), so neither touches the derivation.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import quad

from layergen.spec.declare import Elementwise
from layergen.verify.sampling import needs_positive

from conftest import CATALOG, module

# batch statistics (the training-mode batch-norm flow) couple the samples: not a scalar transformer
SCALAR_TRANSFORMERS = [s.name for s in CATALOG
                       if isinstance(s.spec, Elementwise) and s.spec.kind == "bijection" and not s.spec.reductions]


def _arguments(name: str, rows: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """One random value per parameter and conditioning input, repeated over ``rows`` rows."""
    loaded = next(s for s in CATALOG if s.name == name)
    values = {}
    for sym in loaded.spec.conditioning:
        values[sym.name] = np.full((rows, 1), rng.normal(0.0, 0.7))
    expressions = list(loaded.spec.forward.values())
    for sym in loaded.spec.params:  # a variance under a square root is drawn positive
        value = rng.normal(0.0, 0.7)
        values[sym.name] = np.array([abs(value) if needs_positive(expressions, sym) else value])
    return values


def _push(name: str, kernel: str, points: np.ndarray, values: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    out, logdet = np.empty((points.size, 1)), np.empty(points.size)
    getattr(module(name), kernel)(points.reshape(-1, 1), *values.values(), out, logdet)
    return out[:, 0], logdet


@pytest.mark.parametrize("name", SCALAR_TRANSFORMERS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pushed_forward_uniform_has_mass_one(name: str, seed: int) -> None:
    values = _arguments(name, 1, np.random.default_rng(seed))
    ends = [_push(name, "forward", np.array([end]), values)[0][0] for end in (-1.0, 1.0)]
    lo, hi = sorted(ends)

    def density(y: float) -> float:
        return 0.5 * np.exp(_push(name, "inverse", np.array([y]), values)[1][0])

    def abs_derivative(x: float) -> float:
        return np.exp(_push(name, "forward", np.array([x]), values)[1][0])

    mass, _ = quad(density, lo, hi, epsabs=1e-12, epsrel=1e-12, limit=500)
    assert mass == pytest.approx(1.0, abs=1e-9), f"{name}: the pushed-forward uniform has mass {mass}"
    length, _ = quad(abs_derivative, -1.0, 1.0, epsabs=1e-12, epsrel=1e-12, limit=500)
    assert length == pytest.approx(hi - lo, rel=1e-9), f"{name}: ∫|h'| = {length}, image length {hi - lo}"


def test_the_catalog_has_scalar_transformers() -> None:
    assert {"affine_elementwise", "real_nvp_coupling", "additive_coupling", "sos_polynomial",
            "batch_norm_flow_eval"} <= set(SCALAR_TRANSFORMERS)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sos_inverse_outside_its_bracket_is_an_error(dtype: type) -> None:
    """The SOS spec declares x ∈ [−L, L]; a y whose preimage lies beyond is refused, by name."""
    sos = module("sos_polynomial")
    coefficients = [np.full((1, 1), v, dtype=dtype) for v in (1.0, 0.0, 0.5, 0.3, 0.2, 0.0, 0.0)]
    x, logdet = np.empty((1, 1), dtype=dtype), np.empty(1, dtype=dtype)
    edge = np.empty((1, 1), dtype=dtype)
    sos.forward(np.full((1, 1), 10.0, dtype=dtype), *coefficients, edge, logdet, 10.0)  # h(L) for L = 10
    sos.inverse(edge * dtype(0.999), *coefficients, x, logdet, 10.0)
    assert 9.9 < x[0, 0] < 10.0
    for outside in (edge * dtype(1.01), -edge * dtype(1.01), np.full((1, 1), np.nan, dtype=dtype)):
        with pytest.raises(ValueError, match="numeric inverse of sos_polynomial.*bracket"):
            sos.inverse(outside, *coefficients, x, logdet, 10.0)
