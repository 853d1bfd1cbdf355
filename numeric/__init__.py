"""Fast float64 evaluation of the registry's statements over many instances; search; certification.

    families, dln      instance families (BatchNorm channels with loss heads; deep linear networks)
    losses, hessians   loss heads' g and H in closed form; diagonal-plus-low-rank Hessians
    quantities         the registry's quantities of N channels, vectorised (closed forms of theory.bn)
    maxima             Theorem C.1's maxima over ||X|| <= lambda: exact trust-region solutions
    sweep              every variant on every family: verdicts, slack statistics, rounding checks
    refine             scipy.optimize from the worst sampled instances
    certify            exact / interval re-evaluation of one instance; exact inertia of H
    counterexample     the one counterexample search (docs, errata, report): smallest non-degenerate certified
    bench              closed forms vs torch.func (python -m numeric.bench)
"""
