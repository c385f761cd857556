"""The verification table and its summary."""

from __future__ import annotations

from dataclasses import dataclass, field

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
