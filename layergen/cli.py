"""The ``layergen`` command: list, derive, generate [--check], verify, latex; train, sample and predict
(``layergen.cli_runtime``)."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from layergen.cli_flows import cmd_sample
from layergen.cli_runtime import cmd_predict, cmd_train
from layergen.errors import LayergenError
from layergen.spec.loader import LoadedSpec, builtin_spec_dir, discover, select


def _add_spec_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--specs", metavar="DIR", action="append", type=Path, default=[],
                        help="also load the specs in DIR (<DIR>/<group>/<name>.py); repeatable")
    parser.add_argument("--out", metavar="DIR", type=Path, default=None,
                        help="where to write the modules generated from --specs (default: ./generated)")


def _add_jobs_option(parser: argparse.ArgumentParser, what: str) -> None:
    """``--jobs N``, read by ``_jobs``: worker processes for whole specs (``layergen.workers``)."""
    parser.add_argument("--jobs", type=int, default=None, metavar="N",
                        help=f"worker processes {what} (default: one per usable core; 1: none)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="layergen", description=(
        "Derive gradients, log-determinants and inverses of neural-network specs symbolically, "
        "generate Numba kernels and verify them."))
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p = sub.add_parser("list", help="list the discovered specs")
    _add_spec_options(p)
    p = sub.add_parser("derive", help="print the derivation of specs, readably")
    p.add_argument("names", nargs="+", metavar="NAME")
    p.add_argument("--kernels", action="store_true", help="also print the lowered kernel descriptions")
    _add_spec_options(p)
    p = sub.add_parser("generate", help="regenerate the kernel modules that changed")
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 and list every stale file")
    p.add_argument("--no-cache", action="store_true", help="derive afresh, ignoring the derivation cache")
    _add_jobs_option(p, "deriving the specs missing from the cache")
    _add_spec_options(p)
    p = sub.add_parser("verify", help="generate, then verify kernels against their symbolic source")
    p.add_argument("names", nargs="*", metavar="NAME", help="specs to verify (default: all)")
    seeds = p.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=int, default=0)
    seeds.add_argument("--seeds", metavar="A-B", default=None,
                       help="verify at each seed from A to B and print each check's worst error against its tolerance")
    _add_jobs_option(p, "each verifying whole specs")
    _add_spec_options(p)
    p = sub.add_parser("latex", help="export the derivations as LaTeX (or Markdown) documents")
    p.add_argument("names", nargs="*", metavar="NAME", help="specs to export (default: all)")
    p.add_argument("--out", type=Path, default=None, help="folder for <name>.tex and derivations.tex")
    p.add_argument("--format", choices=["tex", "md"], default="tex", help="tex (default) or md (Markdown + MathJax)")
    p.add_argument("--check", metavar="DIR", type=Path, default=None,
                   help="write nothing; exit 1 when a document in DIR no longer matches its spec")
    _add_jobs_option(p, "deriving the specs missing from the cache")
    p.add_argument("--specs", metavar="DIR", action="append", type=Path, default=[], help="also load the specs in DIR")
    p = sub.add_parser("train", help="train a network or a flow with the generated kernels (default: the two-moons "
                                     "Real NVP; or a TOML config, or --example NAME)")
    p.add_argument("config", nargs="?", type=Path, help="CONFIG.toml")
    p.add_argument("--example", help="a built-in example: two-moons (the default), two-moons-2000, eight-gaussians, "
                                     "checkerboard, rings, two-moons-maf, two-moons-nice, two-moons-sos, two-moons-glow, "
                                     "eight-gaussians-mixture, two-moons-bn, digits-maf, digits-realnvp, power-maf, power-realnvp "
                                     "(flows; power-* "
                                     "need pip install -e '.[data]'); two-moons-iaf (an IAF distilled from the two-moons flow); "
                                     "digits-mlp (a classifier); diabetes-gaussian (a regressor with "
                                     "predicted variances)")
    p.add_argument("--steps", type=int, help="override a flow's number of steps; with --resume, extend its run to this many")
    p.add_argument("--resume", metavar="DIR", type=Path,
                   help="continue a network's or a flow's run from the checkpoint in DIR, as if it had never stopped")
    p.add_argument("--seed", type=int, help="override [train] seed")
    p.add_argument("--epochs", type=int, help="override [train] epochs; with --resume, extend the run to this many")
    p.add_argument("--out", type=Path, help="override [train] out (checkpoint, curves); with --resume, write there")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p = sub.add_parser("sample", help="draw samples from a trained flow's checkpoint (000 Algorithm 2)")
    p.add_argument("checkpoint", type=Path, metavar="CHECKPOINT", help="a flow's folder written by layergen train")
    p.add_argument("-n", type=int, default=1000, help="number of samples (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the base distribution's draws")
    p.add_argument("--out", type=Path, help="write the samples (in data units) to this .npy file, or this .csv file "
                                            "(with the data's column names), instead of printing them")
    p = sub.add_parser("predict", help="predict with a trained network's checkpoint on new samples (.csv or .npz), "
                                       "or a trained flow's log-density of each sample (in the data's units)")
    p.add_argument("checkpoint", type=Path, metavar="CHECKPOINT", help="a folder written by layergen train")
    p.add_argument("data", type=Path, metavar="DATA", help="a .csv file with the training data's feature columns "
                                                          "(a header row; other columns are ignored), or a .npz "
                                                          "file with an array x")
    p.add_argument("--out", type=Path, help="write the predictions to this .csv file instead of printing them")
    return parser


def _targets(args: argparse.Namespace) -> tuple[list[LoadedSpec], Path, bool]:
    """The specs a command acts on, where their modules live, and whether they are built in."""
    from layergen.codegen import builtin_generated_dir

    everything = discover(args.specs)
    if args.specs:
        roots = [d.resolve() for d in args.specs]
        own = [s for s in everything if any(s.path.resolve().is_relative_to(r) for r in roots)]
        return own, (args.out or Path("generated")), False
    if args.out is not None:
        raise LayergenError("argument --out: only applies to specs given with --specs; the built-in catalog "
                            "is always generated into the package's generated/ folder")
    return everything, builtin_generated_dir(), True


def cmd_list(args: argparse.Namespace) -> int:
    specs = discover(args.specs)
    builtin = builtin_spec_dir()
    print(f"{'name':<22} {'group':<12} {'level':<12} {'kind':<15} file")
    for s in specs:
        where = s.path.relative_to(builtin.parent) if s.path.is_relative_to(builtin) else s.path
        print(f"{s.name:<22} {s.group:<12} {s.spec.level:<12} {s.spec.kind:<15} {where}")
    print(f"{len(specs)} specs")
    return 0


def cmd_derive(args: argparse.Namespace) -> int:
    from layergen.codegen import lower
    from layergen.codegen.ast import dump
    from layergen.derive import derive
    from layergen.derive.describe import describe

    for loaded in select(discover(args.specs), args.names):
        der = derive(loaded)
        print(describe(der))
        if args.kernels:
            print()
            for kernel in lower(der):
                print(dump(kernel))
                print()
        print()
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from layergen.codegen import generate

    start = time.perf_counter()
    specs, out_dir, builtin = _targets(args)
    report = generate(specs, out_dir, check=args.check, use_cache=not args.no_cache, prune=builtin,
                      jobs=_jobs(args))
    seconds = time.perf_counter() - start
    if args.check:
        problems = report.stale + report.orphans
        for path in report.stale:
            print(f"stale: {path}")
        for path in report.orphans:
            print(f"orphan (its spec is gone): {path}")
        if problems:
            print(f"{len(problems)} of {len(specs)} generated files are stale; run `layergen generate`", file=sys.stderr)
            return 1
        print(f"all {len(specs)} generated modules in {out_dir} are up to date ({seconds:.1f} s)")
        return 0
    for path in report.written:
        print(f"wrote {path}")
    for path in report.orphans:
        print(f"removed {path} (its spec is gone)")
    print(f"{len(report.written)} written, {len(report.unchanged)} unchanged, in {out_dir} ({seconds:.1f} s)")
    return 0


def _jobs(args: argparse.Namespace) -> int:
    """``--jobs``: worker processes for whole specs; by default one per usable core."""
    from layergen.workers import usable_cores

    if args.jobs is None:
        return usable_cores()
    if args.jobs < 1:
        raise LayergenError(f"argument --jobs: must be a positive integer (worker processes), got {args.jobs}")
    return args.jobs


def cmd_verify(args: argparse.Namespace) -> int:
    from layergen.codegen import generate
    from layergen.verify.parallel import verify_specs
    from layergen.verify.report import Summary, format_row, header, parse_seeds

    start = time.perf_counter()
    seeds = None if args.seeds is None else parse_seeds(args.seeds)
    jobs = _jobs(args)
    specs, out_dir, builtin = _targets(args)
    specs = select(specs, args.names)
    report = generate(specs, out_dir, prune=False, jobs=jobs)
    if report.written:
        print(f"generated {len(report.written)} module(s) into {out_dir}")
    results = verify_specs(specs, out_dir.resolve(), seeds or [args.seed], jobs)
    if seeds is not None:
        return _verify_seeds(list(results), seeds, len(specs), start)
    summary = Summary()
    print(header())
    for (rows,) in results:
        for row in rows:
            summary.add(row)
            print(format_row(row), flush=True)
    print(summary.text(time.perf_counter() - start))
    return 0 if summary.ok else 1


def _verify_seeds(results: list, seeds: range, specs: int, start: float) -> int:  # type: ignore[type-arg]
    """``layergen verify --seeds A-B``: a line per seed, every failing row, then the sweep's summary;
    ``results`` holds each spec's rows per seed."""
    from layergen.verify.report import Sweep, format_row

    sweep = Sweep()
    for index, seed in enumerate(seeds):
        rows = [row for per_seed in results for row in per_seed[index]]
        for row in rows:
            sweep.add(seed, row)
        failed = [row for row in rows if not row.ok]
        print(f"seed {seed}: {len(rows)} checks, " + (f"{len(failed)} FAILED" if failed else "all passed"), flush=True)
        for row in failed:
            print("  " + format_row(row), flush=True)
    print(sweep.text(seeds, specs, time.perf_counter() - start))
    return 0 if not sweep.failures else 1


def cmd_latex(args: argparse.Namespace) -> int:
    from layergen.derive import derive_all
    from layergen.latex.export import check, export

    specs = select(discover(args.specs), args.names)
    derive_all(specs, jobs=_jobs(args))  # those missing from the cache, on worker processes, into the cache
    if args.check is not None:
        stale = check(specs, args.check)
        for item in stale:
            print(f"stale: {item.path} ({item.reason})")
        if stale:
            print(f"{len(stale)} exported document(s) are stale; run `layergen latex --out {args.check}`", file=sys.stderr)
            return 1
        print(f"all exported derivations in {args.check} match their specs")
        return 0
    if args.out is None:
        raise LayergenError("argument --out: required (the folder to write the documents into), or use --check DIR")
    start = time.perf_counter()
    written = export(specs, args.out, args.format)
    for path in written:
        print(f"wrote {path}")
    print(f"{len(written)} written, {len(specs) + 1 - len(written)} unchanged, in {args.out} "
          f"({time.perf_counter() - start:.1f} s)")
    return 0


COMMANDS = {"train": cmd_train, "sample": cmd_sample, "predict": cmd_predict, "list": cmd_list, "derive": cmd_derive, "generate": cmd_generate, "verify": cmd_verify, "latex": cmd_latex}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return COMMANDS[args.command](args)
    except LayergenError as exc:
        print(f"layergen: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a path that cannot be read or written: its name and the system's reason, no traceback
        if exc.filename is None:
            raise
        target = exc.filename if exc.filename2 is None else f"{exc.filename} → {exc.filename2}"
        print(f"layergen: error: {target}: {exc.strerror}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C: no traceback (the network's training says what its checkpoint holds)
        print("layergen: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (``layergen predict ... | head``): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python's flush at exit writes nowhere
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
