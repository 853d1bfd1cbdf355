"""Checkpoints: everything a run needs to continue exactly where it stopped.

One file, ``DIR/checkpoint.pt``, rewritten atomically every ``checkpoint_every`` steps:
the configuration, the next step to run, each network's model (parameters and BatchNorm
running statistics) and optimiser state, the data order at that step, every RNG state
(torch CPU and CUDA, numpy's global, python's), the sizes of the record files (a resume
truncates them back, see gpu_check.records) and the accumulated timings.  It loads with
``torch.load(weights_only=True)``: plain containers and tensors only, no pickled code.
"""
from __future__ import annotations

import io
import os
import pickle
import random
import zipfile

import numpy as np
import torch

from gpu_check import records

FORMAT = 1


class CheckpointError(ValueError):
    """No checkpoint, or one that does not belong to the requested run."""


def rng_states() -> dict:
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": random.getstate(),
    }


def set_rng_states(states: dict) -> None:
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    n = states["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    random.setstate(states["python"])


def save(path: str, *, config: dict, next_step: int, networks: dict, file_sizes: dict, timing: dict) -> None:
    """``networks``: name -> {"model": state_dict, "optimizer": state_dict, "data_order": dict}."""
    payload = {
        "format": FORMAT, "config": config, "next_step": int(next_step),
        "networks": {name: {"model": {k: v.detach().cpu() for k, v in n["model"].items()},
                            "optimizer": n["optimizer"],
                            "data_order": {k: (torch.as_tensor(v) if isinstance(v, np.ndarray) else v)
                                           for k, v in n["data_order"].items()}}
                     for name, n in networks.items()},
        "rng": rng_states(), "file_sizes": dict(file_sizes), "timing": dict(timing),
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    records.atomic_write_bytes(path, buffer.getvalue())


def load(path: str) -> dict:
    """The checkpoint at `path`; CheckpointError (one line naming the file) when there is none,
    when it is not a complete checkpoint, or when it is not one of ours.  torch's own message is
    not passed on: for a weights-only failure it advises unsafe loading, which we never do."""
    if not os.path.exists(path):
        raise CheckpointError(f"no checkpoint at {path}: nothing to resume")
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint {path} is not a regular file")
    incomplete = CheckpointError(f"checkpoint {path} is not a complete checkpoint (cut short or corrupt, "
                                 f"{os.path.getsize(path)} bytes); delete it to start the run again")
    # torch.save writes a zip archive whose central directory comes last: a file cut short, or
    # bytes that never were a checkpoint, fail this test before any unpickling
    if not zipfile.is_zipfile(path):
        raise incomplete
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(f"checkpoint {path} holds objects other than tensors and plain containers: "
                              f"not a checkpoint written by gpu_check; refusing to load it") from None
    except (RuntimeError, OSError, EOFError, ValueError, KeyError, IndexError, AttributeError):
        raise incomplete from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {path} has format {payload.get('format') if isinstance(payload, dict) else '?'}, "
                              f"this code reads format {FORMAT}")
    return payload
