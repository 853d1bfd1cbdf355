"""Probe your own model: the paper's statements checked on any torch network, in your own loop.

    import gpu_check
    with gpu_check.attach(model, out="runs/mine", every=50, channels=4, seed=0) as probe:
        for step, (x, t) in enumerate(loader):
            probe.step(step, lambda m: loss_fn(m(x), t))   # before the update: this step's weights
            loss = loss_fn(model(x), t)
            loss.backward(); opt.step(); opt.zero_grad()

``probe.step`` probes when ``step % every == 0`` and otherwise returns at once.  A probe calls the
closure on a float64 shadow copy of the model (gpu_check.probes.ModelProbe), measures every
BatchNorm layer it meets and appends the registry's verdicts to ``out/probes.jsonl``.  It changes
nothing of the training: not the parameters, their .grad, the running statistics, the RNG states
(torch, CUDA, numpy, Python) nor the training/eval mode.

``out`` is an ordinary run directory (config.json with format_version, git revision and the model;
probes.jsonl; events.jsonl with each probe's cost), read by ``python -m theory.report --trajectory
out``.  gpu_check.run's own training loop probes its networks through the same ``Probe``.
"""
from __future__ import annotations

import numbers
import os
import time

import torch

from gpu_check import records
from gpu_check.probes import ModelProbe, ProbeError, describe_model, model_device

__all__ = ["attach", "Probe", "ProbeError"]


def _integer(value, name: str, least: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < least:
        raise ProbeError(f"{name} = {value!r}: must be an integer >= {least}")
    return int(value)


class Probe:
    """Probes one model every ``every`` steps; writes to the run directory ``out`` (or, with
    ``out=None``, returns the records to a caller that writes them, as gpu_check.train does)."""

    def __init__(self, model, out, *, every: int, channels: int, seed: int, network=None, names: dict = None,
                 stream: int = 0, dtype=torch.float64):
        if not isinstance(model, torch.nn.Module):
            raise ProbeError(f"attach needs a torch.nn.Module, got {type(model).__name__}")
        self.every = _integer(every, "every", 1)
        self.channels = _integer(channels, "channels", 1)
        seed = _integer(seed, "seed", 0)
        self.core = ModelProbe(model, channels, seed, names=names, network=network, stream=stream, dtype=dtype)
        self.out, self.writer, self.seconds, self.count, self.last_seconds = out, None, 0.0, 0, 0.0
        self._described = False
        self._attached = time.perf_counter()   # the user's run, as far as the probe sees it
        if out is not None:
            self._open(os.fspath(out), model, seed, dtype)

    def _open(self, out: str, model, seed: int, dtype) -> None:
        if os.path.exists(out) and not os.path.isdir(out):
            raise ProbeError(f"out = {out!r} is a file, not a run directory")
        os.makedirs(out, exist_ok=True)
        occupied = records.occupied_by(out)
        if occupied:
            raise ProbeError(f"out = {out!r} already holds a run ({', '.join(occupied)}): choose a new directory")
        device = model_device(model)
        meta = {**records.provenance(device), "kind": "attach",
                "config": {"preset": "attach", "norm": "bn", "seed": seed, "probe_every": self.every,
                           "probe_channels": self.channels, "probe_dtype": str(dtype).replace("torch.", "")},
                "model": describe_model(model),
                "channels": {k: [int(c) for c in v] for k, v in self.core.channels.items()}}
        records.atomic_write_json(os.path.join(out, records.CONFIG), meta)
        self.writer = records.RecordWriter(out, [records.PROBES, records.EVENTS])
        self.writer.write(records.EVENTS, [{"event": "start", "time": time.time(), "git": meta["git"],
                                            "device": meta["device"]}])

    def due(self, step: int) -> bool:
        return step % self.every == 0

    def step(self, step: int, closure) -> list:
        """Probe at ``step`` if it is due (before the optimiser's update of that step); returns the
        records written (empty when not due)."""
        step = _integer(step, "step", 0)
        if not self.due(step):
            return []
        if self.out is not None and self.writer is None:
            raise ProbeError(f"probe.step({step}) after probe.close(): the run directory {self.out!r} is closed")
        rows = self.measure(step, closure)
        if self.writer is not None:
            self.writer.write(records.PROBES, rows)
            event = self.event(step) | {"site_seconds": dict(self.core.site_seconds)}
            if not self._described:
                event["sites"] = self.core.sites_seen
                self._described = True
            self.writer.write(records.EVENTS, [event])
        return rows

    def event(self, step: int) -> dict:
        """The events log's record of the last probe: its wall time, how its Hessian forms were
        computed (``hessian``: the chain sweep, or Hessian-vector products and why) and, for a
        sweep, its check against Hessian-vector products at the layer nearest the output
        (``sweep_audit``)."""
        event = {"event": "probe", "step": step, "seconds": self.last_seconds, "hessian": self.core.hessian_method}
        if self.core.audit is not None:
            event["sweep_audit"] = self.core.audit
        return event

    def measure(self, step: int, closure) -> list:
        """Probe now, whatever the step; the records (not written).  The run's loop calls this."""
        device = self.core.device
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        rows = self.core.rows(step, closure)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        self.last_seconds = time.perf_counter() - t0
        self.seconds += self.last_seconds
        self.count += 1
        return rows

    def share(self) -> float:
        """The probes' share of the wall time since attach: probe seconds / seconds since attach
        (the issue's measure of what probing costs a run; gpu_check.probe_bench predicts it)."""
        elapsed = time.perf_counter() - self._attached
        return self.seconds / elapsed if elapsed > 0 else 0.0

    def close(self) -> None:
        if self.writer is not None:
            wall = time.perf_counter() - self._attached
            self.writer.write(records.EVENTS, [{"event": "close", "time": time.time(), "probes": self.count,
                                                "probe_seconds": self.seconds, "wall_seconds": wall,
                                                "probe_share": self.seconds / wall if wall > 0 else 0.0}])
            self.writer.close()
            self.writer = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def attach(model, out, every: int = 50, channels: int = 4, seed: int = 0) -> Probe:
    """A Probe of ``model`` writing the run directory ``out`` (new or empty).  ``every``: probe
    at steps divisible by it; ``channels``: channels sampled (reproducibly from ``seed``) per
    BatchNorm layer.  ValueError (ProbeError) on bad input, naming it."""
    if out is None:
        raise ProbeError("out = None: attach writes a run directory; name one")
    return Probe(model, out, every=every, channels=channels, seed=seed)
