"""Printing derivations the way the notes write them: index notation, ∂L/∂· for adjoints.

Element symbols become indexed (x → x_{α'α}: α' runs over the batch, α over features, as in
003 §8); per-feature parameters and batch statistics carry α, per-sample reductions α'.
Adjoints ``grad_y`` print as ∂L/∂y_{α'α}. Sums print without limits (Σ_{α'}), Kronecker
deltas as δ_{α'β'}; no SymPy dummy (``_d``, ``_i_1``) or raw Python name reaches the page.

The index symbols below are roles (the summed pair, the free pair, two more for matrix
elements); the letters they print as are chosen per document (``IndexLetters``), so a spec
with a parameter named α or β does not read ``α_α`` where an index meets the parameter.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

import sympy as sp
from sympy.printing.latex import LatexPrinter

A1, A0, B1, B0, MU, NU = sp.symbols("alpha1 alpha0 beta1 beta0 mu nu", integer=True)

#: Index letters in the order they are handed out: the notes' α, β (003 §8) and μ, ν (003 §9.1)
#: first, then letters that no catalog function prints as (σ, π, δ, ε, θ, φ are taken by the
#: sigmoid, constants, Kronecker's delta and common parameter names).
INDEX_POOL = ("alpha", "beta", "mu", "nu", "kappa", "lambda", "rho", "tau", "xi", "zeta", "eta", "iota", "chi", "omega")


@dataclass(frozen=True)
class IndexLetters:
    """The Greek letter each index role prints as: ``summed`` (α' over the batch, α over the
    features), ``free`` (β', β: the element a derivative is taken at), ``row`` and ``column``
    (μ, ν: a matrix element)."""

    summed: str = "alpha"
    free: str = "beta"
    row: str = "mu"
    column: str = "nu"
    #: the loss in ∂L/∂·: 𝓛 where the spec names something L (an LU factor, the SOS flow's bracket)
    loss: str = "L"
    #: further letters for the sums a matrix product writes out (LU mixing's Σ over two inner indices)
    spare: tuple[str, ...] = INDEX_POOL[4:]

    def table(self) -> dict[sp.Symbol, str]:
        return {A1: f"\\{self.summed}'", A0: f"\\{self.summed}", B1: f"\\{self.free}'", B0: f"\\{self.free}",
                MU: f"\\{self.row}", NU: f"\\{self.column}"}


NOTES_LETTERS = IndexLetters()
INDEX_TEX = NOTES_LETTERS.table()
_LETTERS: ContextVar[IndexLetters] = ContextVar("index_letters", default=NOTES_LETTERS)


def letters_avoiding(names: Iterable[str]) -> IndexLetters:
    """The notes' index letters, except that a letter some spec name prints as (a parameter α,
    a mean μ) is replaced by the next free letter of ``INDEX_POOL``."""
    taken = {greek_base(name) for name in names}
    free = [letter for letter in INDEX_POOL if letter not in taken]
    return IndexLetters(*free[:4], loss=r"\mathcal{L}" if "L" in taken else "L", spare=tuple(free[4:]))


def spare_indices() -> list[sp.Symbol]:
    """Index symbols for inner sums, printed as the current document's spare letters."""
    return [sp.Symbol(letter, integer=True) for letter in _LETTERS.get().spare]


def loss_letter() -> str:
    """The loss as the current document writes it in ∂L/∂·."""
    return _LETTERS.get().loss


def greek_base(name: str) -> str:
    """The letter a name prints as, without its subscripts: mu_new → mu, beta1 → beta."""
    return re.sub(r"(?<=[A-Za-z])[0-9]+$", "", name.partition("_")[0])


@contextmanager
def index_letters(letters: IndexLetters) -> Iterator[IndexLetters]:
    """Print every index role with ``letters`` inside the block (one document is built in it)."""
    token = _LETTERS.set(letters)
    try:
        yield letters
    finally:
        _LETTERS.reset(token)


def subscript(*indices: sp.Symbol) -> str:
    """A subscript of index roles as the current document prints it: ``subscript(A1, A0)`` → ``_{\\alpha'\\alpha}``."""
    table = _LETTERS.get().table()
    return "_{" + "".join(table[i] for i in indices) + "}"


_GREEK = {"alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa", "lambda", "mu",
          "nu", "xi", "pi", "rho", "sigma", "tau", "upsilon", "phi", "chi", "psi", "omega"}
_CAPITALS = {"Gamma", "Delta", "Theta", "Lambda", "Xi", "Pi", "Sigma", "Upsilon", "Phi", "Psi", "Omega"}
_LATIN_CAPITALS = {"alpha": "A", "beta": "B", "epsilon": "E", "zeta": "Z", "eta": "H", "iota": "I", "kappa": "K",
                   "mu": "M", "nu": "N", "rho": "P", "tau": "T", "chi": "X"}


def name_tex(name: str) -> str:
    """A spec name as the notes would write it: Greek letters, single letters, else roman."""
    base, _, sub = name.partition("_")
    if base == "ell":
        head = r"\ell"
    elif base.endswith("hat") and len(base) > 3:  # Xhat → X̂ (003 §8)
        head = rf"\hat{{{name_tex(base[:-3])}}}"
    elif base in _GREEK or base in _CAPITALS:
        head = "\\" + base
    elif base.lower() in _GREEK:  # a capital LaTeX has no command for looks like the Latin letter
        head = rf"\mathrm{{{_LATIN_CAPITALS[base.lower()]}}}" if base.lower() in _LATIN_CAPITALS else rf"\operatorname{{{base}}}"
    elif (numbered := re.fullmatch(r"([A-Za-z]+?)([0-9]+)", base)) and numbered.group(1).lower() in _GREEK:
        head = f"{{{name_tex(numbered.group(1))}_{{{numbered.group(2)}}}}}"  # beta1 → β₁ (000 eq. 23)
    elif len(base) == 1 or re.fullmatch(r"[A-Za-z][0-9]*", base):
        head = base if len(base) == 1 else f"{{{base[0]}_{{{base[1:]}}}}}"  # braced: an index may follow
    else:
        head = rf"\operatorname{{{base}}}"
    if sub and re.fullmatch(r"[0-9]+(?:_[0-9]+)*", sub):  # a_0_1 → a_{0,1}
        return f"{{{head}_{{{sub.replace('_', ',')}}}}}"
    return f"{{{head}_{{\\mathrm{{{sub}}}}}}}" if sub else head


class NotesPrinter(LatexPrinter):
    """SymPy's LaTeX printer with the notes' conventions."""

    def __init__(self) -> None:
        self.index_tex = _LETTERS.get().table()
        # long_frac_ratio: a numerator over three times its denominator's width is printed after the fraction,
        # A/√(S+ε) (G − (1/n) Σ …) as 003 §8 writes it, instead of one tall fraction with small type
        super().__init__({"symbol_names": dict(self.index_tex), "mul_symbol": None, "long_frac_ratio": 3})

    def _print_Symbol(self, expr: sp.Symbol, style: str = "plain") -> str:
        if expr in self.index_tex:
            return self.index_tex[expr]
        if expr.name in ("N",):
            return "n"
        if expr.name == "D":
            return "d"
        if expr.name.startswith("grad_"):
            return rf"\frac{{\partial {loss_letter()}}}{{\partial {name_tex(expr.name[5:])}}}"
        return name_tex(expr.name)

    def _print_IndexedBase(self, expr: sp.IndexedBase) -> str:
        return name_tex(str(expr.label))

    def _print_Indexed(self, expr: sp.Indexed) -> str:
        name = str(expr.base.label)
        indices = "".join(self._print(i) for i in expr.indices)
        if name.startswith("grad_"):
            return rf"\frac{{\partial {loss_letter()}}}{{\partial {name_tex(name[5:])}_{{{indices}}}}}"
        return f"{name_tex(name)}_{{{indices}}}"

    def _print_Sum(self, expr: sp.Sum) -> str:
        indices = "".join(self._print(limit[0]) for limit in expr.limits)
        return rf"\sum_{{{indices}}} {self.parenthesize(expr.function, 1000 if expr.function.is_Add else 0)}"

    def _print_OneMatrix(self, expr: sp.OneMatrix) -> str:
        return r"\mathbf{1}"

    def _print_KroneckerDelta(self, expr: sp.KroneckerDelta, exp: object = None) -> str:
        return rf"\delta_{{{self._print(expr.args[0])}{self._print(expr.args[1])}}}"


def tex(expr: object) -> str:
    return NotesPrinter().doprint(sp.sympify(expr))


def text_tex(text: str) -> str:
    """Plain text (a spec's docstring) for LaTeX: specials escaped, Unicode math mapped."""
    out: list[str] = []
    for ch in text:
        if ch in _COMBINING and out:  # a combining accent decorates the character before it: σ̃ → \tilde{\sigma}
            before = out[-1][1:-1] if out[-1].startswith("$") and out[-1].endswith("$") else out[-1]
            out[-1] = f"$\\{_COMBINING[ch]}{{{before}}}$"
        elif ch in "\\{}$&#^_%~":
            out.append({"\\": r"\textbackslash{}", "^": r"\^{}", "~": r"\~{}"}.get(ch, "\\" + ch))
        elif ord(ch) < 128:
            out.append(ch)
        else:
            out.append(_UNICODE.get(ch, f"[U+{ord(ch):04X}]"))
    return "".join(out)


_UNICODE = {
    "α": r"$\alpha$", "β": r"$\beta$", "γ": r"$\gamma$", "δ": r"$\delta$", "ε": r"$\varepsilon$", "θ": r"$\theta$",
    "λ": r"$\lambda$", "μ": r"$\mu$", "π": r"$\pi$", "σ": r"$\sigma$", "τ": r"$\tau$", "φ": r"$\phi$", "ψ": r"$\psi$",
    "ω": r"$\omega$", "Σ": r"$\Sigma$", "Φ": r"$\Phi$", "Δ": r"$\Delta$", "ℓ": r"$\ell$", "∂": r"$\partial$",
    "⊙": r"$\odot$", "∘": r"$\circ$", "·": r"$\cdot$", "−": "-", "→": r"$\to$", "←": r"$\leftarrow$", "≥": r"$\geq$",
    "≤": r"$\leq$", "≠": r"$\neq$", "≈": r"$\approx$", "∈": r"$\in$", "∞": r"$\infty$", "√": r"$\surd$", "ᵀ": r"$^T$",
    "²": r"$^2$", "³": r"$^3$", "⁻": r"$^-$", "¹": r"$^1$", "ˣ": r"$^x$", "₀": r"$_0$", "₁": r"$_1$", "§": r"\S{}",
    "—": "---", "–": "--", "’": "'", "“": "``", "”": "''", "…": r"\dots{}", "×": r"$\times$", "±": r"$\pm$",
    "′": "'", "ν": r"$\nu$", "η": r"$\eta$", "κ": r"$\kappa$", "ρ": r"$\rho$", "χ": r"$\chi$", "ξ": r"$\xi$",
    "ζ": r"$\zeta$", "Γ": r"$\Gamma$", "Λ": r"$\Lambda$", "Ω": r"$\Omega$", "Ψ": r"$\Psi$", "Θ": r"$\Theta$",
    "Π": r"$\Pi$", "ⁿ": r"$^n$", "ℝ": r"$\mathbb{R}$", "ᵤ": r"$_u$", "⁺": r"$^+$", "ū": r"$\bar{u}$", "ē": r"$\bar{e}$", "ḡ": r"$\bar{g}$", "ᵢ": r"$_i$",
    "½": r"$\frac{1}{2}$", "ŝ": r"$\hat{s}$", "ˢ": r"$^s$", "ᵗ": r"$^t$", "₂": r"$_2$", "∇": r"$\nabla$",
    "∫": r"$\int$", "⊘": r"$\oslash$",
}
_COMBINING = {"\u0302": "hat", "\u0303": "tilde", "\u0304": "bar"}
