"""Every discovered spec passes the four verification checks: a new spec is tested by existing."""

from __future__ import annotations

import numpy as np
import pytest

from layergen.spec.loader import LoadedSpec
from layergen.verify.checks import verifier_for
from layergen.verify.report import format_row

from conftest import derivation, module


def test_spec_verifies(catalog_spec: LoadedSpec) -> None:
    rows = verifier_for(derivation(catalog_spec.name), module(catalog_spec.name), seed=0).run()
    assert rows, "the verifier produced no checks"
    checks = {r.check for r in rows}
    assert "oracle" in checks
    assert {r.dtype for r in rows if r.check == "oracle"} == {"float32", "float64"}
    kind = catalog_spec.spec.kind
    if kind in ("map", "loss", "bijection"):
        assert {"finite-diff", "dot-product"} <= checks
    if kind == "bijection" and getattr(catalog_spec.spec, "reductions", None):
        # batch statistics: log|det J| at frozen statistics against SymPy; inverse in the eval spec
        assert "logdet-sympy" in checks
    elif kind == "bijection":
        assert {"logdet-fd", "round-trip"} <= checks
    failures = [format_row(r) for r in rows if not r.ok]
    assert not failures, "\n".join(failures)


def test_every_kernel_is_checked_against_the_oracle(catalog_spec: LoadedSpec) -> None:
    rows = verifier_for(derivation(catalog_spec.name), module(catalog_spec.name), seed=1).run()
    checked = {r.kernel for r in rows if r.check == "oracle"}
    assert checked == set(module(catalog_spec.name).KERNELS)


@pytest.mark.parametrize("seed", [11, 12])
def test_other_seeds_pass_too(seed: int) -> None:
    for name in ("softmax", "bce_logits", "affine_coupling", "dense", "shear2d"):
        rows = verifier_for(derivation(name), module(name), seed=seed).run()
        assert all(r.ok for r in rows), [format_row(r) for r in rows if not r.ok]


def test_a_wrong_kernel_fails_verification() -> None:
    """The checks can fail: sigmoid's derivation against tanh's kernels does not verify."""
    rows = verifier_for(derivation("sigmoid"), module("tanh"), seed=0).run()
    assert not all(r.ok for r in rows)
    assert any(r.check == "oracle" and not r.ok and r.max_abs > 0.1 for r in rows)
    assert np.isfinite([r.max_abs for r in rows]).all()
