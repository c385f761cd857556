"""A flow's checkpoint, written atomically: the state at the run's start and after each better validation
NLL, complete and in one file, ``checkpoint.npz``: the parameters and constants, Adam's moments, and a
JSON description (the step count, the state of the generator that draws the minibatches and the
dequantisation noise, the architecture, the settings, the history so far, the data's statistics and
SHA-256). Resuming from it repeats the steps after that state exactly as they ran, so a run stopped at any
point and resumed ends bit for bit where the uninterrupted run ends. ``checkpoint.json`` repeats the
description for reading (and for `layergen sample`); at the end of a run it also records the whole history.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from layergen.errors import LayergenError
from layergen.runtime.checkpoint import atomic_write, write_description, write_npz
from layergen.runtime.flow import Flow
from layergen.runtime.flow_architecture import FlowArchitecture
from layergen.runtime.flow_data import FlowData
from layergen.runtime.flow_settings import FlowConfig, FlowHistory
from layergen.runtime.kernel_catalog import own_fingerprints, refuse_changed_kernels


def data_fingerprint(data: FlowData) -> str:
    """SHA-256 of the three splits as the flow sees them (after standardisation), so a resumed run can tell
    that its data, or their preparation, have changed."""
    digest = hashlib.sha256()
    for part in (data.train, data.val, data.test):
        digest.update(np.ascontiguousarray(part, dtype=np.float64).tobytes())
    return digest.hexdigest()


def save_flow(folder: Path, flow: Flow, data: FlowData, config: FlowConfig, history: FlowHistory,
              sampler: dict | None = None, data_sha256: str = "", kind: str = "flow", extra: dict | None = None) -> None:
    """The flow's state and its run's description (``sampler``: the minibatch generator's state, so the run
    can be resumed; None where the run draws no minibatches, as a distilled IAF's; ``data_sha256``: the
    data's ``data_fingerprint``, computed once per run; ``kind`` "iaf" and the distillation's own
    description in ``extra`` for an IAF, ``iaf_train``) into ``checkpoint.npz``, and the description again
    into ``checkpoint.json``, each atomic."""
    meta = {"kind": kind, **(extra or {}), "architecture": asdict(flow.arch), "config": asdict(config), "step": flow.step_count,
            "data": {"name": data.name, "mean": data.mean.tolist(), "std": data.std.tolist(), "names": list(data.names)},
            "history": asdict(history),
            "own_kernels": own_fingerprints(flow.arch.own_modules), "sampler": sampler,
            "data_sha256": data_sha256}
    m, v = flow.adam_moments
    arrays = {"theta": flow.theta, "const": flow.const,  # const: MADE masks, LU permutations, running moments
              "adam_m": m, "adam_v": v, "meta/json": np.array(json.dumps(meta))}
    atomic_write(folder / "checkpoint.npz", lambda tmp: write_npz(tmp, arrays))
    write_description(folder, meta)


def _description(folder: Path) -> dict:
    meta_path = folder / "checkpoint.json"
    if not meta_path.exists():
        raise LayergenError(f"checkpoint: no checkpoint.json in {folder}")
    meta = json.loads(meta_path.read_text())
    if meta.get("kind") not in ("flow", "iaf"):
        raise LayergenError(f"checkpoint {folder}: not a flow's checkpoint (a flow's folder written by layergen train)")
    missing = [key for key in ("architecture", "config", "step") if key not in meta]
    if missing or not (folder / "checkpoint.npz").is_file():
        lacks = f"checkpoint.json has no {', '.join(missing)}" if missing else "there is no checkpoint.npz"
        raise LayergenError(f"checkpoint {folder}: incomplete, {lacks}; train the flow again")
    return meta


def load_flow(folder: Path) -> tuple[Flow, dict]:
    """The flow a checkpoint holds (an IAF's for an IAF's checkpoint) and its description."""
    meta = _description(folder)
    config = FlowConfig(**meta["config"])
    arch = FlowArchitecture(**meta["architecture"])
    refuse_changed_kernels(meta.get("own_kernels", {}), arch.own_modules, folder)  # trained through them as they were
    flow = Flow(arch, np.dtype(config.dtype).type, config.seed, config.lr)
    with np.load(folder / "checkpoint.npz") as stored:
        if stored["theta"].shape != flow.theta.shape:
            raise LayergenError(f"checkpoint {folder}: parameters of shape {stored['theta'].shape} do not fit the "
                                f"architecture's {flow.theta.shape}")
        flow.theta[...] = stored["theta"]
        if "const" in stored and stored["const"].shape == flow.const.shape:
            flow.const[...] = stored["const"]
    if meta["kind"] == "iaf":  # the same MAF parameters, sampled in one pass and evaluated incrementally
        from layergen.runtime.iaf import InverseAutoregressiveFlow

        iaf = InverseAutoregressiveFlow(flow.arch, flow.dtype, config.seed)
        iaf.maf.restore(flow.state())
        return iaf, meta  # type: ignore[return-value]
    return flow, meta


@dataclass
class FlowResume:
    """Where a resumed run continues: its folder, its history so far and the minibatch generator's state."""

    folder: Path
    history: FlowHistory
    sampler: dict
    data_sha256: str


def load_flow_run(folder: Path) -> tuple[Flow, FlowConfig, FlowResume]:
    """A run as its checkpoint holds it, to be continued: the flow with its Adam moments and step count,
    the settings, and where the run stood. The description comes from the .npz, written with the arrays."""
    if _description(folder)["kind"] == "iaf":
        raise LayergenError(f"resume: {folder} holds a distilled IAF, which iaf_train.resume_distillation continues")
    flow, _ = load_flow(folder)
    meta = load_training_state(folder, flow)
    if meta["sampler"] is None:
        raise LayergenError(f"resume: the checkpoint in {folder} does not record its minibatch generator")
    history = FlowHistory(**meta["history"])
    return flow, FlowConfig(**meta["config"]), FlowResume(folder, history, meta["sampler"], meta["data_sha256"])


def load_training_state(folder: Path, flow: Flow) -> dict:
    """Adam's moments and the step count of the checkpoint in ``folder`` into ``flow``, whose parameters and
    constants ``load_flow`` loaded; returns the description the .npz holds, written with the arrays."""
    with np.load(folder / "checkpoint.npz") as stored:
        if "meta/json" not in stored.files or "adam_m" not in stored.files:
            raise LayergenError(f"resume: the checkpoint in {folder} was written before flows' runs could be resumed; "
                                "it holds the parameters only (layergen sample draws from it)")
        meta = json.loads(str(stored["meta/json"]))
        m, v = flow.adam_moments
        m[...], v[...] = stored["adam_m"], stored["adam_v"]
    flow.step_count = int(meta["step"])
    return meta


def check_same_flow_data(resume: FlowResume, data: FlowData) -> None:
    """A resumed run continues on the data it started on, prepared as it was."""
    if data_fingerprint(data) != resume.data_sha256:
        raise LayergenError(f"resume: the data of the run in {resume.folder} have changed since its checkpoint was "
                            "written (their SHA-256 differs); a resumed run must see the same samples. Start a new run "
                            "on the new data")
