"""The verification table and its summary; the summary of a sweep over seeds."""

from __future__ import annotations

from dataclasses import dataclass, field

from layergen.errors import LayergenError
from layergen.verify.checks import Row

_COLUMNS = f"{'spec':<22} {'kernel':<17} {'dtype':<8} {'check':<12} {'max abs err':>12} {'max rel err':>12}  result"


def header() -> str:
    return _COLUMNS + "\n" + "-" * len(_COLUMNS)


def format_row(row: Row) -> str:
    return (f"{row.spec:<22} {row.kernel:<17} {row.dtype:<8} {row.check:<12} {row.max_abs:>12.2e} "
            f"{row.max_rel:>12.2e}  {'ok' if row.ok else 'FAIL'}{'  ' + row.note if row.note else ''}")


@dataclass
class Summary:
    rows: list[Row] = field(default_factory=list)

    def add(self, row: Row) -> None:
        self.rows.append(row)

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.rows)

    def text(self, seconds: float) -> str:
        specs = {r.spec for r in self.rows}
        kernels = {(r.spec, r.kernel) for r in self.rows if r.check == "oracle"}
        failed = [r for r in self.rows if not r.ok]
        worst = {}
        for dtype in ("float64", "float32"):
            oracle = [r for r in self.rows if r.dtype == dtype and r.check == "oracle"]
            if oracle:
                top = max(oracle, key=lambda r: r.scaled)
                worst[dtype] = f"{top.scaled:.2e} ({top.spec}.{top.kernel})"
        lines = ["", f"{len(specs)} specs, {len(kernels)} kernels, {len(self.rows)} checks in {seconds:.1f} s: "
                 + ("all passed" if not failed else f"{len(failed)} FAILED")]
        for dtype, text in worst.items():
            lines.append(f"largest oracle error / max(1, |ref|), {dtype}: {text}")
        return "\n".join(lines)


def _ratio(value: float) -> str:
    return f"{value:.1f}x" if value < 10 else f"{value:.0f}x" if value < 1e4 else f"{value:.0e}x"


def parse_seeds(text: str) -> range:
    """``--seeds``: ``A-B`` (the seeds A to B, both included) or one seed ``A``."""
    first, _, last = text.partition("-")
    try:
        seeds = range(int(first), int(last or first) + 1)
    except ValueError:
        seeds = range(0)
    if not seeds or seeds.start < 0:
        raise LayergenError(f"argument --seeds: expected A-B with 0 ≤ A ≤ B (such as 0-24) or one seed, got {text!r}")
    return seeds


@dataclass
class Sweep:
    """The same checks at many seeds: each check's worst error against its tolerance, and every failure."""

    #: (check, dtype) → (worst scaled error, its tolerance, where: spec.kernel and seed)
    worst: dict[tuple[str, str], tuple[float, float, str]] = field(default_factory=dict)
    failures: list[tuple[int, Row]] = field(default_factory=list)
    checks: int = 0

    def add(self, seed: int, row: Row) -> None:
        self.checks += 1
        key = (row.check, row.dtype)
        if key not in self.worst or row.scaled > self.worst[key][0]:
            self.worst[key] = (row.scaled, row.tol, f"{row.spec}.{row.kernel}, seed {seed}")
        if not row.ok:
            self.failures.append((seed, row))

    def text(self, seeds: range, specs: int, seconds: float) -> str:
        lines = ["", f"worst over seeds {seeds.start}–{seeds.stop - 1} (error beyond the rounding allowance, "
                     "over max(1, |ref|); margin: tolerance / worst, — where no error is left):",
                 f"{'check':<16} {'dtype':<8} {'worst':>9} {'tolerance':>10} {'margin':>8}  where"]
        for (check, dtype), (scaled, tol, where) in sorted(self.worst.items()):
            margin = "—" if scaled == 0 else _ratio(tol / scaled)
            lines.append(f"{check:<16} {dtype:<8} {scaled:>9.2e} {tol:>10.0e} {margin:>8}  {where}")
        result = "all passed" if not self.failures else f"{len(self.failures)} FAILED"
        lines += ["", f"{specs} specs × {len(seeds)} seeds, {self.checks} checks in {seconds:.1f} s: {result}"]
        return "\n".join(lines)
