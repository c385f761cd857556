"""Flow architectures: a base distribution and K blocks, Real NVP affine couplings (000 §10.2-10.4,
eq. 80-83) or MAF blocks with MADE conditioners (eq. 84-85, ``runtime/maf.py``).

Direction convention: forward = data → latent (density), inverse = latent → data (sampling).
Coupling k leaves the columns ``k % 2 :: 2`` unchanged and transforms the others with the
generated ``real_nvp_coupling`` kernel, whose log-scale ŝ and shift t come from a conditioner
MLP of the unchanged columns (dense and activation kernels, 003 §9.1). Alternating the
parity plays the role of the permutation between couplings (log|det| = 0).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from types import ModuleType

from layergen.errors import LayergenError
from layergen.runtime.activation_settings import activation_hypers, split_settings
from layergen.runtime.kernel_catalog import builtin_activations, kernel_module, own_kernels
from layergen.runtime.layout import Layout, Slot
from layergen.runtime.maf import maf_layout
from layergen.runtime.modules import kernel_fingerprint, load_builtin, module_fingerprint
from layergen.runtime.run_config import is_number

#: ``realnvp``: affine couplings of half the columns; ``nice``: additive couplings (volume-preserving);
#: ``maf``: masked autoregressive blocks (MADE); ``sos``: couplings with the sum-of-squares polynomial
#: transformer (000 eq. 86-89), inverted numerically inside the spec's bracket.
TRANSFORMS = ("realnvp", "nice", "maf", "sos")

#: The transforms whose transformer is affine, y = x e^s + t, with a bounded log-scale (``CLAMPS``).
AFFINE_TRANSFORMS = ("realnvp", "maf")

#: The generated transformer of each other transform. Every transformer's conditioning inputs (t for
#: NICE; ŝ, t for the affine ones; a_0_1, ..., a_2_2, b for SOS) are the head's column blocks, read off
#: the kernel by ``conditioning``.
TRANSFORMERS = {"nice": "additive_coupling", "sos": "sos_polynomial"}


def lu_scratch(kernel: str | None = None) -> int:
    """How many D×D scratch buffers the ``lu_linear`` kernel takes (None: the most any of them takes)."""
    kernels = load_builtin("lu_linear").KERNELS
    counts = {name: sum(role == "scratch" for _, role, _ in args) for name, (args, _) in kernels.items()}
    return counts[kernel] if kernel else max(counts.values())


#: how an affine transformer (Real NVP, MAF) bounds its log-scale s within (−B, B), each a generated spec:
#: ``tanh``: s = B tanh(ŝ/B) (``real_nvp_coupling``); ``softclip``: s = ŝ/(1 + |ŝ|/B)
#: (``softclip_affine_coupling``, zuko's parameterisation, with B = ln 1000 to match zuko's default).
CLAMPS = {"tanh": "real_nvp_coupling", "softclip": "softclip_affine_coupling"}


@cache
def conditioning(transformer: str) -> tuple[str, ...]:
    """The conditioning inputs of a generated transformer spec, in argument order."""
    arguments, _ = load_builtin(transformer).KERNELS["forward"]
    return tuple(name for name, role, _ in arguments if role == "conditioning")

KERNELS = ("dense", "real_nvp_coupling", "affine_elementwise", "standard_normal_nll", "neg_logdet", "adam")

#: The conditioners' gradient buffers (∂L/∂ of their pre-activations ``ga``, activations ``gz``, inputs ``gc``
#: and head outputs ``go``): one per parity, not one per coupling. The backward pass of coupling k writes
#: and reads them before it moves on to coupling k − 1, so one buffer serves every coupling of a parity.
#: Why: the stacks were a third of a shard's work buffers (6.3 MB at 128 rows for the default two-moons
#: flow, above the core's 2 MB L2), and with one buffer per parity the gradients stay in cache: the whole
#: step at 128 rows on one core took 0.519 against 0.590 ms (float32) and 1.09 against 1.18–1.23 ms
#: (float64), medians of 7 interleaved blocks, with bit-identical results. In the sharded step at batch 256
#: (two shards of 128 rows, both cores), timed in alternating processes against the code before, the
#: difference stayed within the VM's noise (1.22-1.48 against 1.26-1.56 ms, float64; docs/performance.md).
BACKWARD_SCRATCH = ("ga", "gz", "gc", "go")


def _stack(name: str, count: int) -> int:
    """A conditioner work buffer's stack: one per coupling of the parity, or none (``BACKWARD_SCRATCH``)."""
    return 0 if name in BACKWARD_SCRATCH else count


#: between blocks: ``parity`` only alternates which columns a coupling keeps (a fixed permutation,
#: log|det| = 0); ``lu`` adds a learned invertible mixing W = P·L·U after every block (the generated
#: ``lu_linear`` kernels, 001 §28.3; Glow's 1×1 convolution), P a random permutation fixed by the seed.
MIXINGS = ("parity", "lu")

#: the batch-norm flow's running averages in training: m ← (1 − ρ) m + ρ μ̃ and v ← (1 − ρ) v + ρ σ̃²
#: (000 eq. 75), the statistics that evaluation, log_prob and sampling use
BATCHNORM_RATE = 0.05

#: ``standard``: N(0, I); ``diagonal``: N(μ, diag σ²) learned jointly (000 eq. 73), written as a final
#: elementwise affine bijection z = e^α ⊙ u + β (α = −log σ, β = −μ/σ) before the standard normal;
#: ``mixture``: Σ_c π_c N(μ_c, diag σ_c²) with ``components`` components, means, scales and weights
#: π = softmax(w) all learned jointly (``runtime/mixture_fused.py``).
BASES = ("standard", "diagonal", "mixture")


def _element_by_element(module: ModuleType) -> bool:
    """Whether an activation module acts element by element (a module generated before the flag existed: no)."""
    return bool(getattr(module, "ELEMENT_BY_ELEMENT", False))


@dataclass(frozen=True)
class FlowArchitecture:
    """``dim`` data dimensions, ``couplings`` Real NVP couplings, conditioners with ``depth``
    hidden layers of ``hidden`` units and ``activation``; ``bound`` is the B of s = B tanh(ŝ/B) (or of ŝ/(1 + |ŝ|/B), see ``clamp``).
    ``actnorm`` adds an ActNorm (elementwise affine, data-dependent initialisation) after every
    coupling; ``batchnorm`` a batch-norm flow there instead (000 eq. 75-77: batch statistics in
    training, running averages ``bn_mean``/``bn_var`` in evaluation and sampling); ``base`` is one of
    ``BASES``; ``transform`` one of ``TRANSFORMS`` (for a MAF, ``couplings`` counts its MADE blocks);
    ``clamp`` one of ``CLAMPS`` (affine transforms only)."""

    dim: int = 2
    couplings: int = 8
    hidden: int = 64
    depth: int = 2
    activation: str = "relu"
    bound: float = 3.0
    actnorm: bool = False
    base: str = "standard"
    transform: str = "realnvp"
    mixing: str = "parity"
    batchnorm: bool = False
    components: int = 8
    clamp: str = "tanh"
    own_modules: tuple[str, ...] = ()  # kernel modules generated from your specs: activations the conditioners may use

    def __post_init__(self) -> None:
        for name in ("dim", "couplings", "hidden", "depth", "components"):
            least = 2 if name == "dim" else 1
            if not isinstance(getattr(self, name), int) or getattr(self, name) < least:
                raise LayergenError(f"flow architecture: {name} must be an integer ≥ {least}, got {getattr(self, name)!r}")
        if not isinstance(self.activation, str):
            raise LayergenError(f"flow architecture: activation must be an activation's name, with any settings "
                                f"(\"leaky_relu alpha=0.1\"), got {self.activation!r}")
        # absolute (the fused module imports them by path from elsewhere), and a tuple (a checkpoint's JSON holds a list)
        object.__setattr__(self, "own_modules", tuple(str(Path(path).resolve()) for path in self.own_modules))
        own = own_kernels(self.own_modules)
        activations = (*builtin_activations(), *own.activations)
        if self.activation_name not in activations:
            raise LayergenError(f"flow architecture: unknown activation {self.activation_name!r}"
                                f"{own.why_not(self.activation_name, 'flow activation')}; valid: {', '.join(activations)}")
        self.activation_hypers()  # validates its settings
        if self.transform == "maf" and not _element_by_element(self.activation_kernel()):
            valid = [a for a in activations if _element_by_element(kernel_module(a, self.own_modules))]
            raise LayergenError(f"flow architecture: a MAF's MADE conditioners need an activation that acts element "
                                f"by element; {self.activation_name} mixes the hidden units, so output d would depend "
                                f"on inputs ≥ d and the flow would not invert. Valid: {', '.join(valid)}")
        if self.transform not in TRANSFORMS:
            raise LayergenError(f"flow architecture: unknown transform {self.transform!r}; valid: {', '.join(TRANSFORMS)}")
        if self.transform == "maf" and self.hidden < self.dim - 1:
            raise LayergenError(f"flow architecture: a MAF needs hidden ≥ dim − 1 = {self.dim - 1} units so every MADE "
                                f"degree 1..{self.dim - 1} has a unit, got hidden = {self.hidden}")
        if self.mixing not in MIXINGS:
            raise LayergenError(f"flow architecture: unknown mixing {self.mixing!r}; valid: {', '.join(MIXINGS)}")
        if self.base not in BASES:
            raise LayergenError(f"flow architecture: unknown base {self.base!r}; valid: {', '.join(BASES)}")
        for name in ("actnorm", "batchnorm"):
            if not isinstance(getattr(self, name), bool):
                raise LayergenError(f"flow architecture: {name} must be true or false, got {getattr(self, name)!r}")
        if self.actnorm and self.batchnorm:
            raise LayergenError("flow architecture: actnorm and batchnorm are two normalisations of the same place "
                                "(after every block); choose one")
        if self.clamp not in CLAMPS:
            raise LayergenError(f"flow architecture: unknown clamp {self.clamp!r}; valid: {', '.join(CLAMPS)}")
        if self.clamp != "tanh" and self.transform not in AFFINE_TRANSFORMS:
            raise LayergenError(f"flow architecture: clamp {self.clamp!r} bounds an affine log-scale, but transform "
                                f"{self.transform!r} has none; use it with realnvp or maf")
        if not is_number(self.bound) or not 0 < self.bound < math.inf:
            raise LayergenError(f"flow architecture: bound must be a finite number > 0, got {self.bound!r}")

    @property
    def activation_name(self) -> str:
        """The conditioners' activation spec: the first word of ``activation`` ("leaky_relu alpha=0.1")."""
        return split_settings(self.activation, "flow architecture")[0]

    def activation_hypers(self) -> dict[str, float]:
        """The hyperparameters the conditioners' activation runs with: the spec's defaults, with the settings
        that follow its name in ``activation`` in their place (``runtime/activation_settings.py``)."""
        name, settings = split_settings(self.activation, f"flow architecture: bad activation {self.activation!r}")
        return activation_hypers(name, settings, self.activation_kernel(), "flow architecture")

    def activation_kernel(self) -> ModuleType:
        """The conditioners' activation module: your own (``own_modules``) if it is one of them, else the built-in."""
        return kernel_module(self.activation_name, self.own_modules)

    def describe(self) -> str:
        """One line for reports: 'Real NVP, 8 couplings, conditioners 2×64 relu'."""
        blocks = {"maf": f"MAF, {self.couplings} MADE blocks", "nice": f"NICE, {self.couplings} additive couplings",
                  "sos": f"SOS, {self.couplings} sum-of-squares polynomial couplings"}.get(
            self.transform, f"Real NVP, {self.couplings} couplings")
        extras = "".join(text for text, on in ((", ActNorm", self.actnorm), (", batch norm", self.batchnorm),
                                               (", LU mixing", self.mixing == "lu"),
                                               (", soft-clipped log-scale", self.clamp == "softclip"),
                                               (", diagonal Gaussian base", self.base == "diagonal"),
                                               (f", {self.components}-component Gaussian-mixture base",
                                                self.base == "mixture")) if on)
        return f"{blocks}, conditioners {self.depth}×{self.hidden} {self.activation}{extras}"

    @property
    def normalised(self) -> bool:
        """Whether every block ends with a normalisation (ActNorm or the batch-norm flow) on v[k]."""
        return self.actnorm or self.batchnorm

    def kept(self, k: int) -> int:
        """The parity of the columns coupling k leaves unchanged (and conditions on)."""
        return k % 2

    def width(self, parity: int) -> int:
        """How many columns have this parity."""
        return (self.dim - parity + 1) // 2

    @property
    def transformer(self) -> str:
        """The generated spec of the blocks' transformer (the clamp picks the affine one's)."""
        return CLAMPS[self.clamp] if self.transform in AFFINE_TRANSFORMS else TRANSFORMERS[self.transform]

    def kernel_names(self) -> list[str]:
        extra = {"maf": ("masked_dense",)}.get(self.transform, ()) + (self.transformer,)
        extra += ("lu_linear",) if self.mixing == "lu" else ()
        extra += ("batch_norm_flow", "batch_norm_flow_eval") if self.batchnorm else ()
        extra += ("diagonal_gaussian_logpdf", "mixture_nll") if self.base == "mixture" else ()
        return sorted({*KERNELS, self.activation_name, *extra})

    def key(self) -> str:
        kernels = {n: kernel_fingerprint(n) for n in self.kernel_names() if n != self.activation_name}
        kernels[self.activation_name] = module_fingerprint(self.activation_kernel())  # perhaps one of yours
        text = json.dumps({"flow": asdict(self), "kernels": kernels, "template": _flow_template_hash()}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def count(self, parity: int) -> int:
        """How many couplings keep the columns of this parity (k = parity, parity + 2, ...)."""
        return (self.couplings - parity + 1) // 2

    def layout(self) -> Layout:
        """Per-coupling arrays are stacked by the parity of the coupling (``W0_1[j]`` is the second
        conditioner layer of coupling 2j, ``W1_1[j]`` of coupling 2j + 1), so the fused functions
        loop over couplings with two loop bodies, one per parity, whatever the number of couplings.
        ``u[k]`` is the input of coupling k (``u[K]`` the latent), ``ld[k]`` its log|det J|."""
        params: list[Slot] = []
        fixed: list[Slot] = []
        work: list[Slot] = [Slot("u", 0, self.dim, self.couplings + 1), Slot("gu", 0, self.dim, self.couplings + 1),
                            Slot("ld", 0, 0, self.couplings), Slot("gld", 0, 0, self.couplings)]
        if self.transform == "maf":
            params, fixed, made_work = maf_layout(self.dim, self.couplings, self.hidden, self.depth, self.count)
            work += made_work
        heads = len(conditioning(self.transformer))  # conditioning columns per moved column
        for p in (0, 1) if self.transform != "maf" else ():
            count = self.count(p)
            if count == 0:
                continue
            d_in, d_out = self.width(p), self.width(1 - p)
            widths = [d_in] + [self.hidden] * self.depth
            for layer in range(self.depth):
                params += [Slot(f"W{p}_{layer}", widths[layer], widths[layer + 1], count),
                           Slot(f"b{p}_{layer}", 1, widths[layer + 1], count)]
                work += [Slot(f"{name}{p}_{layer}", 0, self.hidden, _stack(name, count)) for name in ("a", "z", "ga", "gz")]
            params += [Slot(f"Wh{p}", self.hidden, heads * d_out, count), Slot(f"bh{p}", 1, heads * d_out, count)]
            work += [Slot(f"{name}{p}", 0, d_in, _stack(name, count)) for name in ("c", "gc")]
            work += [Slot(f"{name}{p}", 0, heads * d_out, _stack(name, count)) for name in ("o", "go")]
            if self.actnorm:
                params += [Slot(f"act_alpha{p}", self.dim, 0, count), Slot(f"act_beta{p}", self.dim, 0, count)]
        if self.transform == "maf" and self.actnorm:
            params += [Slot(f"act_{name}{p}", self.dim, 0, self.count(p)) for p in (0, 1) if self.count(p)
                       for name in ("alpha", "beta")]
        if self.mixing == "lu":  # m[k]: the input of block k's mixing; its factors per parity like the rest
            params += [Slot(f"lu{f}{p}", self.dim, self.dim, self.count(p)) for p in (0, 1) if self.count(p) for f in "LU"]
            fixed += [Slot(f"luP{p}", self.dim, self.dim, self.count(p)) for p in (0, 1) if self.count(p)]
            work += [Slot("m", 0, self.dim, self.couplings), Slot("gm", 0, self.dim, self.couplings),
                     Slot("ldl", 0, 0, self.couplings), Slot("gldl", 0, 0, self.couplings),
                     Slot("lus", self.dim, self.dim, lu_scratch())]
        if self.batchnorm:  # running averages of the batch statistics: not trained, kept with the constants
            params += [Slot(f"bn_{name}{p}", self.dim, 0, self.count(p)) for p in (0, 1) if self.count(p)
                       for name in ("alpha", "beta")]
            fixed += [Slot(f"bn_{name}{p}", self.dim, 0, self.count(p)) for p in (0, 1) if self.count(p)
                      for name in ("mean", "var")]
        if self.normalised:  # v[k]: the output of coupling k, the input of its normalisation
            work += [Slot("v", 0, self.dim, self.couplings), Slot("gv", 0, self.dim, self.couplings),
                     Slot("lda", 0, 0, self.couplings), Slot("glda", 0, 0, self.couplings)]
        if self.base == "diagonal":
            params += [Slot("base_alpha", self.dim, 0), Slot("base_beta", self.dim, 0)]
            work += [Slot("zb", 0, self.dim), Slot("gzb", 0, self.dim), Slot("ldb", 0, 0), Slot("gldb", 0, 0)]
        if self.base == "mixture":  # ma[:, c]: component c's log-density of each sample; mq, gmq, mgz: one component's
            C = self.components
            params += [Slot("mix_mu", self.dim, 0, C), Slot("mix_s", self.dim, 0, C), Slot("mix_w", C, 0)]
            work += [Slot("ma", 0, C), Slot("gma", 0, C), Slot("mq", 0, self.dim), Slot("gmq", 0, self.dim),
                     Slot("mgz", 0, self.dim)]
        return Layout(tuple(params), tuple(fixed), tuple(work))

    def parameter_names(self) -> list[tuple[str, str, int | None]]:
        """(per-coupling name, stack name, index in the stack) of every trainable array, in
        coupling order: ``W{k}_{l}``, ``b{k}_{l}`` (conditioner layer l), ``Wh{k}``, ``bh{k}`` (head), ``act_alpha{k}``, ``act_beta{k}`` (ActNorm),
        ``bn_alpha{k}``, ``bn_beta{k}`` (batch-norm flow),
        ``lu_L{k}``, ``lu_U{k}`` (LU mixing),
        ``base_alpha``, ``base_beta`` (diagonal base), ``mix_mu``, ``mix_s``, ``mix_w`` (mixture base;
        these not stacked: index None)."""
        names = []
        for k in range(self.couplings):
            p, j = k % 2, k // 2
            for layer in range(self.depth):
                names += [(f"W{k}_{layer}", f"W{p}_{layer}", j), (f"b{k}_{layer}", f"b{p}_{layer}", j)]
            names += [(f"Wh{k}", f"Wh{p}", j), (f"bh{k}", f"bh{p}", j)]
            if self.actnorm:
                names += [(f"act_alpha{k}", f"act_alpha{p}", j), (f"act_beta{k}", f"act_beta{p}", j)]
            if self.batchnorm:
                names += [(f"bn_alpha{k}", f"bn_alpha{p}", j), (f"bn_beta{k}", f"bn_beta{p}", j)]
            if self.mixing == "lu":
                names += [(f"lu_L{k}", f"luL{p}", j), (f"lu_U{k}", f"luU{p}", j)]
        if self.base == "diagonal":
            names += [("base_alpha", "base_alpha", None), ("base_beta", "base_beta", None)]
        if self.base == "mixture":  # (components × dim) means and log-scales, (components,) logits
            names += [("mix_mu", "mix_mu", None), ("mix_s", "mix_s", None), ("mix_w", "mix_w", None)]
        return names


@cache
def _flow_template_hash() -> str:
    here = Path(__file__).parent
    # every file whose code the flow module's compiled functions contain: Numba's cache, keyed by the
    # module's own file, would not notice a change in them
    parts = [here.parent / "codegen" / "templates" / "flow.py.j2", here / "flow_fused.py", here / "flow_architecture.py",
             here / "layout.py", here / "maf.py", here / "maf_fused.py", here / "mixture_fused.py", here / "flow_nodes.py",
             here / "fused.py", here / "sharded.py", here / "sharded_source.py", here / "threads.py", here / "blas.py",
             here / "flat_view.py", here / "gemm.py"]
    return hashlib.sha256(b"".join(p.read_bytes() for p in parts)).hexdigest()[:12]
