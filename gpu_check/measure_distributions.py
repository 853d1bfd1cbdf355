"""Distributional stability of sampled units (Figures 1(c), 2, 6, 8, 9).

"we sample random activations from any given layer of the network and plot its distribution
over the batch dimension for fully connected layers, and over the batch, height, width
dimension for convolutional layers" (Appendix A.2.1).  Here:

* a unit is a channel j of a block's output; per block, UNITS_PER_LAYER channels are drawn
  once from (seed, network, block) -- the same units for every norm, every step, every resume;
* ``where = "output"``: the block's output as the next layer receives it before the ReLU: the
  linear map's output for 'none', the normalised output for bn and the l_p norms, and for
  noisy BN the output *after* Algorithm 1's noise (the distributional instability Figure 2
  shows is that noise).  This is the activation the figures and the verdicts use.  A
  normalised unit's batch mean and variance are beta and gamma^2 (up to epsilon) by
  construction, so for bn their changes are those of beta and gamma;
* ``where = "pre-norm"``: for a block with a normalisation, also the linear map's output y
  that the normalisation receives (for 'none' it is the output itself, not repeated);
* at a measured step t and again at t + 1 (so that Figure 8's change between two successive
  steps is a difference of two records), on the batch of that step, in training mode: the
  unit's mean, variance (biased, over the m values) and the QUANTILES of its m values.

``moment_changes`` pairs the records of t and t + 1 into (d_mean, d_var) per unit.
"""
from __future__ import annotations

import contextlib

import numpy as np
import torch

from gpu_check.measure_hook import MeasurementHook

DISTRIBUTIONS_FILE = "distributions.jsonl"
UNITS_PER_LAYER = 4
# Quantile levels of the batch distribution: median, quartiles, and the bands of the paper's
# histogram-over-time plots (TensorBoard's 7 levels: +-1, 2, 3 sigma of a normal, and the extremes).
QUANTILES = (0.0, 0.0228, 0.1587, 0.5, 0.8413, 0.9772, 1.0)
_UNIT_STREAM = 19


def sample_units(seed: int, network: str, block_index: int, n_channels: int, k: int = UNITS_PER_LAYER) -> np.ndarray:
    """min(k, n_channels) channels of one block, sorted: a function of (seed, network, block)."""
    net = {"dln": 0, "vgg": 1}.get(network, 2)
    rng = np.random.default_rng([seed, _UNIT_STREAM, net, block_index])
    return np.sort(rng.choice(n_channels, size=min(k, n_channels), replace=False))


@contextlib.contextmanager
def block_outputs(model):
    """While active, ``captured[(name, "output")]`` is the output of each block of the last
    forward pass, and ``captured[(name, "pre-norm")]`` its linear map's output when the block
    has a normalisation."""
    captured, handles = {}, []
    for name, block in model.blocks():
        handles.append(block.register_forward_hook(
            lambda _m, _inp, out, name=name: captured.__setitem__((name, "output"), out.detach())))
        if block.norm is not None:
            handles.append(block.linear.register_forward_hook(
                lambda _m, _inp, out, name=name: captured.__setitem__((name, "pre-norm"), out.detach())))
    try:
        yield captured
    finally:
        for h in handles:
            h.remove()


def unit_values(out: torch.Tensor, units) -> torch.Tensor:
    """(n, C, ...) -> (K, m) float64: each unit's values over the batch (and height, width)."""
    idx = torch.as_tensor(np.asarray(units), device=out.device)
    return out.transpose(0, 1)[idx].reshape(len(idx), -1).double()


def unit_statistics(values: torch.Tensor, levels=QUANTILES) -> dict:
    """Mean, biased variance and quantiles of each row of ``values`` (K, m) -> numpy arrays."""
    q = torch.tensor(levels, dtype=values.dtype, device=values.device)
    return {"mean": values.mean(1).cpu().numpy(),                                  # (K,)
            "var": values.var(1, unbiased=False).cpu().numpy(),                    # (K,)
            "quantiles": torch.quantile(values, q, dim=1).T.cpu().numpy()}         # (K, Q)


def distribution_rows(step: int, network: str, model, inputs, units: dict) -> list:
    """One record per (block, unit, where): the unit's batch distribution at this step."""
    with torch.no_grad(), block_outputs(model) as captured:
        model(inputs)
    rows = []
    for block_name, chans in units.items():
        for where in ("output", "pre-norm"):
            if (block_name, where) not in captured:
                continue
            out = captured[(block_name, where)]
            s = unit_statistics(unit_values(out, chans))
            for k, j in enumerate(chans):
                rows.append({"step": step, "network": network, "layer": f"{network}/{block_name}",
                             "unit": int(j), "where": where, "m": int(out.numel() // out.shape[1]),
                             "mean": float(s["mean"][k]), "var": float(s["var"][k]),
                             "levels": list(QUANTILES), "quantiles": s["quantiles"][k].tolist()})
    return rows


def moment_changes(rows, where="output") -> list:
    """Figure 8: for every record at step t whose unit was also recorded at t + 1, the change
    of mean and variance, {network, layer, unit, step, d_mean, d_var} (signed, t+1 minus t);
    records of the activation ``where`` only ('output' or 'pre-norm')."""
    at = {(r["network"], r["layer"], r["unit"], int(r["step"])): r for r in rows
          if r.get("where", "output") == where}
    out = []
    for (net, layer, unit, step), r in sorted(at.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2], kv[0][3])):
        nxt = at.get((net, layer, unit, step + 1))
        if nxt is not None:
            out.append({"network": net, "layer": layer, "unit": unit, "step": step,
                        "d_mean": float(nxt["mean"]) - float(r["mean"]),
                        "d_var": float(nxt["var"]) - float(r["var"])})
    return out


class DistributionHook(MeasurementHook):
    """Sampled units' batch distributions at steps t and t + 1 for every K-th t -> distributions.jsonl."""

    name, file = "distributions", DISTRIBUTIONS_FILE

    def __init__(self, config):
        super().__init__(config)
        self.units = {}

    def due(self, step: int, net) -> bool:
        return step % self.every in (0, 1 % self.every) or step == self.config.steps

    def units_of(self, net) -> dict:
        if net.name not in self.units:
            self.units[net.name] = {
                name: sample_units(self.config.seed, net.name, i, block.linear.out_features
                                   if hasattr(block.linear, "out_features") else block.linear.out_channels)
                for i, (name, block) in enumerate(net.model.blocks())}
        return self.units[net.name]

    def measure(self, ctx) -> list:
        return distribution_rows(ctx.step, ctx.net.name, ctx.net.model, ctx.inputs, self.units_of(ctx.net))
