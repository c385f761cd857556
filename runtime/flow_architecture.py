"""Real NVP flows: a standard-normal base and K affine couplings (000 §10.2-10.4, eq. 80-83).

Direction convention: forward = data → latent (density), inverse = latent → data (sampling).
Coupling k leaves the columns ``k % 2 :: 2`` unchanged and transforms the others with the
generated ``real_nvp_coupling`` kernel, whose log-scale ŝ and shift t come from a conditioner
MLP of the unchanged columns (dense and activation kernels, 003 §9.1). Alternating the
parity plays the role of the permutation between couplings (log|det| = 0).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

from layergen.errors import LayergenError
from functools import cache
from pathlib import Path

from layergen.runtime.architecture import ACTIVATIONS
from layergen.runtime.layout import Layout, Slot
from layergen.runtime.modules import load_builtin

KERNELS = ("dense", "real_nvp_coupling", "standard_normal_nll", "neg_logdet", "adam")


@dataclass(frozen=True)
class FlowArchitecture:
    """``dim`` data dimensions, ``couplings`` Real NVP couplings, conditioners with ``depth``
    hidden layers of ``hidden`` units and ``activation``; ``bound`` is the B of s = B tanh(ŝ/B)."""

    dim: int = 2
    couplings: int = 8
    hidden: int = 64
    depth: int = 2
    activation: str = "relu"
    bound: float = 3.0

    def __post_init__(self) -> None:
        for name in ("dim", "couplings", "hidden", "depth"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < (2 if name == "dim" else 1):
                raise LayergenError(f"flow architecture: {name} must be an integer ≥ {2 if name == 'dim' else 1}, "
                                    f"got {getattr(self, name)!r}")
        if self.activation not in ACTIVATIONS:
            raise LayergenError(f"flow architecture: unknown activation {self.activation!r}; valid: {', '.join(ACTIVATIONS)}")
        if not self.bound > 0:
            raise LayergenError(f"flow architecture: bound must be positive, got {self.bound!r}")

    def kept(self, k: int) -> int:
        """The parity of the columns coupling k leaves unchanged (and conditions on)."""
        return k % 2

    def width(self, parity: int) -> int:
        """How many columns have this parity."""
        return (self.dim - parity + 1) // 2

    def kernel_names(self) -> list[str]:
        return sorted({*KERNELS, self.activation})

    def key(self) -> str:
        kernels = {n: load_builtin(n).SPEC_HASH for n in self.kernel_names()}
        text = json.dumps({"flow": asdict(self), "kernels": kernels, "template": _flow_template_hash()}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def layout(self) -> Layout:
        params: list[Slot] = []
        work: list[Slot] = [Slot("u0", 0, self.dim), Slot("gu0", 0, self.dim)]
        for k in range(self.couplings):
            d_in, d_out = self.width(self.kept(k)), self.width(1 - self.kept(k))
            widths = [d_in] + [self.hidden] * self.depth
            for layer in range(self.depth):
                params += [Slot(f"W{k}_{layer}", widths[layer], widths[layer + 1]), Slot(f"b{k}_{layer}", 1, widths[layer + 1])]
                work += [Slot(f"a{k}_{layer}", 0, self.hidden), Slot(f"z{k}_{layer}", 0, self.hidden),
                         Slot(f"ga{k}_{layer}", 0, self.hidden), Slot(f"gz{k}_{layer}", 0, self.hidden)]
            params += [Slot(f"Wh{k}", self.hidden, 2 * d_out), Slot(f"bh{k}", 1, 2 * d_out)]
            work += [Slot(f"c{k}", 0, d_in), Slot(f"gc{k}", 0, d_in), Slot(f"o{k}", 0, 2 * d_out),
                     Slot(f"go{k}", 0, 2 * d_out), Slot(f"ld{k}", 0, 0), Slot(f"gld{k}", 0, 0),
                     Slot(f"u{k + 1}", 0, self.dim), Slot(f"gu{k + 1}", 0, self.dim)]
        return Layout(tuple(params), (), tuple(work))


@cache
def _flow_template_hash() -> str:
    here = Path(__file__).parent
    parts = [here.parent / "codegen" / "templates" / "flow.py.j2", here / "flow_fused.py", here / "flow_architecture.py",
             here / "layout.py"]
    return hashlib.sha256(b"".join(p.read_bytes() for p in parts)).hexdigest()[:12]
