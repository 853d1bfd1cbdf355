"""gpu_check: the paper's networks (Appendix A), trained, with every registered statement
evaluated along the real training trajectory (probes).  Runs on CUDA when there is one and
on the CPU otherwise.

    python -m gpu_check.run --preset smoke --norm bn --out /tmp/s

Modules, in the order data flows through a run:

    config      RunConfig (frozen) and the named presets; flags override fields
    data        DLN Gaussian regression data, CIFAR-10 (pickle format) and the synthetic stand-in
    norms       the normalisation choice: none, bn, noisy-bn (Algorithm 1), l1, l2, linf
    models      the 25-layer deep linear network and the VGG-like network, Glorot-initialised
    probes      y, z, g, v and the Hessian forms of any torch model (hooks on its BatchNorm
                layers, a float64 shadow copy) -> numeric.quantities -> theory.evaluate
    chain_forms the probes' Hessian forms by a forward sweep on a chain of known layers
    probing     the attach API (gpu_check.attach, Probe): probes along a user's own training
    records     jsonl appends, atomic rewrites, config.json metadata
    checkpoint  model, optimiser, RNG states, data order, record offsets
    train       the step loop with optional hooks (probes, evaluation, measurements)
    measure_hook  the measurement hooks' shared base (interval, statistics freeze, loss at parameters)
    measure_ics, measure_landscape, measure_distributions
                Definition 2.1's ICS (through the registry), the loss landscape along the
                gradient (Section 3.1, A.2.2), activation distributions (Figures 1c, 2, 6, 8, 9)
    measure     the registry of the measurements and their cost table
    summary     summarise_probes(run_dir) for the trajectory report
    trajectory_report  the rows of theory.report --trajectory (no torch needed)
    run         the command line
    plots       figures from run directories
    reproduce   the reproduction report (docs/reproduction.md)
    criteria, readings, run_summary, claims, reproduction_doc
                a claim's criterion and interval over seeds, the readings and the grid, the
                per-run summaries, the claims, the documents made from the summaries
    probe_bench the cost of probes (per layer and channel, and their share of a run)

``gpu_check.attach(model, out, every, channels, seed)`` probes a user's own network (see
gpu_check.probing); ``import gpu_check`` stays light: torch loads on first use of ``attach``.
"""

import sys

from theory import cli as _cli

_LAZY = ("attach", "Probe", "ProbeError")
# The optional dependencies each command line of this package needs (pip install -e '.[test]').
_CLI_NEEDS = {"gpu_check.plots": ("torch", "matplotlib"), "gpu_check.reproduce": ("torch", "matplotlib")}
_CLI_NEEDS_DEFAULT = ("torch",)


def _check_command_line_extras() -> None:
    """``python -m gpu_check.<cli>`` with torch or matplotlib missing: one line naming the extra
    and exit 2, instead of a ModuleNotFoundError traceback from the CLI's first import.  Python
    imports this package to find the CLI while sys.argv[0] is still '-m' (nowhere else: an
    import by theory.report --trajectory, which needs neither, happens after that)."""
    if sys.argv[:1] != ["-m"]:
        return
    argv = list(getattr(sys, "orig_argv", []))
    module = argv[argv.index("-m") + 1] if "-m" in argv[:-1] else ""
    if not module.startswith("gpu_check."):
        return
    for name in _CLI_NEEDS.get(module, _CLI_NEEDS_DEFAULT):
        try:
            __import__(name)
        except ModuleNotFoundError as err:
            sys.stderr.write(f"error: python -m {module}: {_cli.missing_extra(err) or err}\n")
            sys.exit(_cli.EXIT_BAD_INPUT)


_check_command_line_extras()


def __getattr__(name):
    if name in _LAZY:
        from gpu_check import probing
        return getattr(probing, name)
    raise AttributeError(f"module 'gpu_check' has no attribute {name!r}")
