"""Paths the catalog does not reach yet: batch-axis and nested reductions, scalar trainable
parameters, optimizer steps. The specs live in tests/specs and are generated like a user's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from layergen.codegen import generate
from layergen.derive import derive
from layergen.runtime.modules import import_generated
from layergen.spec.loader import LoadedSpec, discover
from layergen.verify.checks import verifier_for
from layergen.verify.report import format_row

SPECS = Path(__file__).parent / "specs"
TEST_SPECS: list[LoadedSpec] = [s for s in discover([SPECS]) if s.path.is_relative_to(SPECS)]


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("generated")
    generate(TEST_SPECS, out)
    return out


def load(out_dir: Path, name: str):  # type: ignore[no-untyped-def]
    loaded = next(s for s in TEST_SPECS if s.name == name)
    return import_generated(out_dir / loaded.group / f"{name}.py")


@pytest.mark.parametrize("name", [s.name for s in TEST_SPECS])
def test_spec_verifies(out_dir: Path, name: str) -> None:
    loaded = next(s for s in TEST_SPECS if s.name == name)
    rows = verifier_for(derive(loaded), load(out_dir, name), seed=3).run()
    assert rows and all(r.ok for r in rows), "\n".join(format_row(r) for r in rows if not r.ok)


def test_batch_norm_vjp_is_the_boxed_result_of_003_section_8() -> None:
    rng = np.random.default_rng(0)
    n, d, eps = 7, 3, 1e-5
    X, G = rng.normal(size=(n, d)), rng.normal(size=(n, d))
    A, B = rng.normal(size=d), rng.normal(size=d)
    grads = [np.empty((n, d)), np.empty(d), np.empty(d)]
    from conftest import module

    module("batch_norm_train").vjp(X, A, B, G, *grads, eps)
    M, S = X.mean(axis=0), X.var(axis=0)
    Xhat = (X - M) / np.sqrt(S + eps)
    # 003 §8: ∂L/∂X_{β'β} = A_β/(n√(S_β+ε)) [n G_{β'β} − Σ_α' G_{α'β} − X̂_{β'β} Σ_α' G_{α'β} X̂_{α'β}]
    boxed_x = A / (n * np.sqrt(S + eps)) * (n * G - G.sum(axis=0) - Xhat * (G * Xhat).sum(axis=0))
    np.testing.assert_allclose(grads[0], boxed_x, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(grads[1], (G * Xhat).sum(axis=0), rtol=1e-12)   # ∂L/∂A_β = Σ G X̂
    np.testing.assert_allclose(grads[2], G.sum(axis=0), rtol=1e-12)            # ∂L/∂B_β = Σ G


def test_optimizer_step_is_003_section_5_1_and_runs_in_place() -> None:
    from conftest import module

    step = module("sgd_momentum").step
    rng = np.random.default_rng(1)
    theta, g, v = rng.normal(size=5), rng.normal(size=5), rng.normal(size=5)
    expected_v = 0.9 * v - 0.05 * g
    expected_theta = theta + expected_v
    step(theta, g, v, v, theta, 0.05, 0.9)  # (v_new, theta_new) alias (v, theta): an in-place update
    np.testing.assert_allclose(v, expected_v, rtol=1e-15)
    np.testing.assert_allclose(theta, expected_theta, rtol=1e-15)


def test_scalar_parameter_gradient_sums_over_every_element(out_dir: Path) -> None:
    x = np.array([[-2.0, 1.0], [-0.5, 3.0]])
    g = np.array([[1.0, 1.0], [2.0, 1.0]])
    a = np.array(0.25)
    grad_x, grad_a = np.empty_like(x), np.array(np.nan)
    load(out_dir, "prelu").vjp(x, a, g, grad_x, grad_a)
    assert grad_a == pytest.approx(-2.0 * 1.0 + -0.5 * 2.0)
    np.testing.assert_array_equal(grad_x, [[0.25, 1.0], [0.5, 1.0]])


def test_bijection_kernels_return_value_and_logdet() -> None:
    """One fused call per direction returning (y, log|det J|), written into the caller's arrays."""
    from conftest import module

    flow = module("affine_coupling")
    x, s, t = np.ones((2, 3)), np.full((2, 3), 0.5), np.zeros((2, 3))
    y, logdet = np.empty((2, 3)), np.empty(2)
    returned = flow.forward(x, s, t, y, logdet)
    assert returned[0] is y and returned[1] is logdet
    np.testing.assert_allclose(logdet, [1.5, 1.5])
    back, inv_logdet = flow.inverse(y, s, t, np.empty((2, 3)), np.empty(2))
    np.testing.assert_allclose(back, x)
    np.testing.assert_allclose(inv_logdet, -logdet)
