"""Command line: train one of the paper's networks and probe every statement along the way.

    python -m gpu_check.run --preset {smoke,dln-paper,vgg-cpu,vgg-digits,vgg-paper} \\
        --norm {none,bn,noisy-bn,l1,l2,linf} --out DIR [--steps N] [--probe-every K] \\
        [--seed S] [--lr LR] [--device auto|cpu|cuda] [--resume] [--data DIR|sklearn:digits] \\
        [--measure ics,landscape,distributions] [--measure-every K]

Writes DIR/config.json, DIR/metrics.jsonl, DIR/probes.jsonl, DIR/events.jsonl,
DIR/checkpoint.pt and DIR/summary.json; with --measure also DIR/ics.jsonl,
DIR/landscape.jsonl, DIR/distributions.jsonl (see gpu_check.measure), whose cost the
summary states.  Exit status: 0 done, 2 bad input (one line on
stderr, no traceback), 3 training diverged (records kept), 130 Ctrl-C (resumable), 137
--stop-after (a simulated kill).  One run per directory: a second run in a directory in use
exits 2 (a lock file DIR/.lock, held while the run lasts).
"""
from __future__ import annotations

import os
import sys

from gpu_check.checkpoint import CheckpointError
from gpu_check.config import (DEVICES, MEASUREMENTS, NORMS, PRESETS, ConfigError, preset, with_learning_rate,
                              with_overrides)
from gpu_check.data import DataError, check_source
from gpu_check.grid import LockedError, RunLock
from gpu_check.train import RunError, SimulatedInterruption, describe, run_training
from theory import cli

EXIT_BAD_INPUT, EXIT_DIVERGED, EXIT_INTERRUPTED, EXIT_KILLED = cli.EXIT_BAD_INPUT, 3, cli.EXIT_INTERRUPTED, 137


def parser():
    p = cli.parser("python -m gpu_check.run", __doc__.split("\n\n")[0])
    p.add_argument("--preset", required=True, choices=list(PRESETS))
    p.add_argument("--norm", required=True, choices=list(NORMS))
    p.add_argument("--out", required=True, help="run directory")
    p.add_argument("--steps", type=int, help="override the preset's number of steps")
    p.add_argument("--probe-every", type=int, help="probe every K steps (0: no probes)")
    p.add_argument("--probe-channels", type=int, help="channels probed per normalisation layer")
    p.add_argument("--checkpoint-every", type=int)
    p.add_argument("--bn-eps", type=float, help="epsilon of the normalisation layers (0 = the paper's BN)")
    p.add_argument("--seed", type=cli.seed)
    p.add_argument("--lr", type=float, metavar="LR",
                   help="learning rate of every network the preset trains (default: the preset's)")
    p.add_argument("--cpu-threads", type=int, help="torch threads on the CPU (default 1)")
    p.add_argument("--device", choices=list(DEVICES))
    p.add_argument("--data", help="CIFAR-10 directory (cifar-10-batches-py), or sklearn:digits for scikit-learn's "
                   "real 8x8 handwritten digits (preset vgg-digits); default: synthetic images")
    p.add_argument("--measure", metavar="LIST", help="comma-separated measurements of Sections 2-3 to make "
                   f"along the run: {','.join(MEASUREMENTS)}")
    p.add_argument("--measure-every", type=int, metavar="K", help="measure every K steps (default: ~25 points a run)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--stop-after", type=int, metavar="STEP",
                   help="testing aid: die (exit 137, no clean-up) when step STEP is reached")
    return p


def _remove_if_empty(path: str, created: bool) -> None:
    """An --out this invocation created and left empty (an error before any record) goes again."""
    if created and os.path.isdir(path) and not os.listdir(path):
        os.rmdir(path)


def _run(args) -> int:
    try:
        config = with_overrides(preset(args.preset), norm=args.norm, steps=args.steps,
                                probe_every=args.probe_every, probe_channels=args.probe_channels,
                                checkpoint_every=args.checkpoint_every, bn_eps=args.bn_eps,
                                seed=args.seed, cpu_threads=args.cpu_threads, device=args.device, data=args.data,
                                measure=None if args.measure is None else
                                tuple(m.strip() for m in args.measure.split(",") if m.strip()),
                                measure_every=args.measure_every)
        config = with_learning_rate(config, args.lr)
        check_source(args.data)
        created = not os.path.lexists(args.out)
        try:
            # one run per directory: a second process gets exit 2 at once (gpu_check.grid.RunLock;
            # the lock of a dead process is recognised and broken)
            with RunLock(args.out, wait_s=0):
                summary = run_training(config, args.out, resume=args.resume, progress=not args.quiet,
                                       stop_after=args.stop_after)
        except (cli.InputError, ConfigError, DataError, CheckpointError, RunError, LockedError, OSError):
            _remove_if_empty(args.out, created)
            raise
    except LockedError as e:
        raise cli.InputError(f"--out {args.out}: directory in use by another run ({e})") from None
    except OSError as e:          # --out not writable, a file where a directory should be, ...
        raise cli.InputError(f"{args.out}: {e.strerror or e}") from None
    except KeyboardInterrupt:
        print(f"gpu_check.run: interrupted; the last checkpoint in {args.out} is kept: continue with --resume",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    except SimulatedInterruption as e:
        print(f"gpu_check.run: {e}", file=sys.stderr)
        sys.stderr.flush()
        os._exit(EXIT_KILLED)      # like a kill: nothing after this point runs
    print(describe(summary))
    if summary.status == "diverged":
        print(f"gpu_check.run: {summary.message}", file=sys.stderr)
        return EXIT_DIVERGED
    return 0


def main(argv=None) -> int:
    return cli.run(parser(), _run, argv, bad_input=(ConfigError, DataError, CheckpointError, RunError))


if __name__ == "__main__":
    sys.exit(main())
