"""Evaluate every registry variant on the instance families and summarise it: the numeric layer.

For each chunk of instances (numeric.families, numeric.dln, theory.lemma45) the
registry's variants are evaluated by theory.evaluate.evaluate_variant -- the one place slack,
relative slack and the rounding tolerance are defined -- and summarised per variant: instances
(applicable), float violations, min/median/max slack, min relative slack, and the instances
that come closest to a violation (kept for refinement and certification).

Two numeric safeguards are added here, at the edge, without touching a formula:

* **Conditioning the registry's tolerance does not see.**  The tolerance of theory.evaluate is a
  priori: 64 m u times the magnitude of the terms.  (a) A variant built from v = grad_y_bn
  inherits v's absolute error, a few m u (|gamma|/sigma)||g||; relative to ||v|| that is
  m u times ``_gradient_conditioning`` -- unbounded when the exact v is 0 (every batch of m = 2
  with eps = 0; a two-valued batch under a per-sample head), where the float v is pure rounding
  noise.  Such a variant's tolerance is multiplied by (1 + that ratio).  (b) Other conditioning
  (a batch far from 0 relative to its spread: the centring y - mu) is caught a posteriori: an
  instance out of tolerance that is *suspect* (an identity, or |relative slack| <
  SUSPECT_REL_SLACK) is evaluated again with its batch in reverse order; every statement is
  invariant under a permutation of the batch, so the two slacks differ only by rounding, and a
  slack within ROUNDING_ESTIMATE_SAFETY times |slack - slack_reversed| is rounding.  Either way
  the instance is counted 'equality' (and in ``rounding``), never 'violated'; certification
  (numeric.certify) is the final word on what remains.
* **Undefined values.**  A slack that is NaN (0/0, e.g. g = 0 in a ratio ||v||^2/||g||^2) is not a
  violation: the variant's formula is undefined there; such instances are counted apart.
"""
from __future__ import annotations

import functools
import os
import sys
import threading
from dataclasses import dataclass, field

import numpy as np

from numeric import dln, families
from theory import lemma45, statements as registry
from theory.evaluate import evaluate_variant
from theory.vocab import ROUNDING_SAFETY, UNIT_ROUNDOFF, Relation, Setting, Verdict

# Multiple of |slack - slack(reversed batch)| within which a slack is rounding.  Two float64
# evaluations in different summation orders carry independent rounding errors of the same
# size, so their difference has the size of either error; 4 covers the ratio of one error to
# the difference with margin (for two independent errors e1, e2, |e1| <= 4|e1 - e2| fails only
# when they agree to 25%, rare, and then the registry tolerance is the backstop).
ROUNDING_ESTIMATE_SAFETY = 4.0
# Relative slacks below this size are re-checked (rounding of O(1)-conditioned formulas is
# ~1e-16 m; a true violation of an O(1) formula is far above 1e-6 relative).
SUSPECT_REL_SLACK = 1e-6
# Instances kept per variant for refinement and certification, and the largest batch size
# whose instances are kept (interval arithmetic costs O(m^3) for the full-matrix statements).
KEEP = 12
KEEP_MAX_M = 16


# ---------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class KeptInstance:
    """One instance kept for refinement/certification: its inputs by name and its float result."""

    setting: Setting
    inputs: dict
    slack: float
    rel_slack: float
    verdict: Verdict


@dataclass(frozen=True)
class VariantSweep:
    statement_id: str
    variant: str
    relation: str
    instances: int            # applicable instances with a defined slack (slack statistics leave out rounding)
    violations: int           # float violations beyond tolerance and beyond the rounding estimate
    equalities: int
    holds: int
    rounding: int             # out of the registry tolerance but within the rounding estimate
    undefined: int            # NaN slack (formula undefined at the instance)
    min_slack: float
    median_slack: float
    max_slack: float
    min_rel_slack: float
    max_rel_slack: float
    most_violated: tuple      # KeptInstance, smallest relative slack first (m <= KEEP_MAX_M)
    most_held: tuple          # KeptInstance, largest relative slack first (m <= KEEP_MAX_M)
    lhs_summary: tuple = ()   # (min, median, max) of the LHS for definitions
    smallest_m_violated: int = 0


@dataclass
class _Accumulator:
    relation: str
    slacks: list = field(default_factory=list)
    rels: list = field(default_factory=list)
    lhs: list = field(default_factory=list)
    counts: dict = field(default_factory=lambda: {Verdict.VIOLATED: 0, Verdict.EQUALITY: 0, Verdict.HOLDS: 0,
                                                  "rounding": 0, Verdict.UNDEFINED: 0})
    low: list = field(default_factory=list)
    high: list = field(default_factory=list)
    smallest_m: int = 0

    def keep(self, which, items):
        pool = getattr(self, which) + items
        reverse = which == "high"
        pool.sort(key=lambda k: k.rel_slack, reverse=reverse)
        setattr(self, which, pool[:KEEP])


# ---------------------------------------------------------------------------------------------
# One chunk
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ChunkEvaluation:
    """A chunk of instances of one setting and what the rounding checks need to redo it."""

    q: object               # Quantities of the chunk
    m: int                  # batch size (the width for networks, the dimension for the toy model)
    setting: str
    make_inputs: object     # i -> dict of the instance's inputs by name
    recheck: object         # index -> Quantities of those instances with the batch reversed
    perturb: object = None  # index -> Quantities of those instances with v moved by its rounding bound


def _gradient_conditioning(q):
    """(N,) (|gamma|/sigma) ||g|| / ||v||, v = grad_y_bn.

    The float v = (gamma/sigma) P g carries an absolute error of a few m u (|gamma|/sigma)||g||
    (three inner products of length m), so a quantity built from v has a relative error of about
    m u times this ratio: large when g is nearly in span{1, y_hat}, unbounded when the exact v is
    0 (m = 2 with eps = 0; a two-valued batch under a per-sample head)."""
    v = np.sqrt(q.ops.vec_sq(q.grad_y_bn))
    scale = np.abs(q.gamma) / q.sigma * np.sqrt(q.ops.vec_sq(q.g))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(v > 0, scale / np.where(v > 0, v, 1.0), np.where(scale > 0, np.inf, 1.0))


# An instance is checked for sensitivity to the rounding of v when v is below 1e-3 of
# (|gamma|/sigma)||g||, i.e. when v's relative error can exceed ~1e3 m u.
SENSITIVE_CONDITIONING = 1e3
# The size of the perturbation of v: 64 m u (|gamma|/sigma)||g||, the registry's rounding
# safety (theory.evaluate.ROUNDING_SAFETY) applied to v's scale.  Observed errors of the float v
# at exact v = 0 reach ~40 u (|gamma|/sigma)||g|| at m = 2 (the centring, y_hat and three inner
# products), so a smaller move could miss that a slack is made of rounding.
GRADIENT_ROUNDING_FACTOR = ROUNDING_SAFETY


def perturbed_gradient(q, seed, index=None):
    """v + delta with ||delta|| = 64 m u (|gamma|/sigma)||g|| in a seeded random direction, for the
    instances `index` of q (all by default), (K, m)."""
    index = slice(None) if index is None else index
    v, g = q.grad_y_bn[index], q.g[index]
    direction = np.random.default_rng(seed).standard_normal(v.shape)
    direction /= np.linalg.norm(direction, axis=-1, keepdims=True)
    size = GRADIENT_ROUNDING_FACTOR * q.m[index] * UNIT_ROUNDOFF * np.abs(q.gamma[index]) / q.sigma[index] \
        * np.sqrt(q.ops.vec_sq(g))
    return v + size[:, None] * direction


def _first_pass(statement, variant, result, q):
    """(verdicts, suspect, sensitive, rounding): verdicts with undefined slacks marked; the
    instances to re-evaluate with the batch reversed (suspect) or with v moved by its rounding
    bound (sensitive); and those already classified as rounding (a near-zero slack under a
    constraint)."""
    verdicts = result.verdicts.copy()
    n = len(verdicts)
    none = np.zeros(n, bool)
    if Relation(result.relation) is Relation.DEFINITION:
        return verdicts, none, none, none
    verdicts[result.applicable & ~np.isfinite(result.slack)] = Verdict.UNDEFINED
    out = np.isin(verdicts, (Verdict.VIOLATED, Verdict.HOLDS))
    sensitive = none
    if "grad_y_bn" in variant.requires and q.has(("grad_y_bn", "g", "gamma", "sigma")):
        sensitive = out & (_gradient_conditioning(q) > SENSITIVE_CONDITIONING)
    suspect = out & ~sensitive & ((np.abs(result.rel_slack) < SUSPECT_REL_SLACK) | (Relation(result.relation) is Relation.EQ))
    if variant.constraint is not None:
        # The constraint holds only to rounding (a float H built to satisfy it exactly cannot), and
        # the slack moves with the constraint's residual by an amount the tolerance does not model:
        # a near-zero slack under a constraint is left to exact certification.
        tiny = out & (np.abs(result.rel_slack) < SUSPECT_REL_SLACK)
        verdicts[tiny] = Verdict.EQUALITY
        return verdicts, suspect & ~tiny, sensitive & ~tiny, tiny
    return verdicts, suspect, sensitive, none


def _second_pass(result, verdicts, suspect, sensitive, slack_reversed, slack_perturbed, rounding):
    """Mark as rounding (verdict 'equality') what the rechecks show to be within rounding."""
    rounding = rounding.copy()
    slack = result.slack
    if suspect.any():
        i = np.flatnonzero(suspect)
        within = np.abs(slack[i]) <= ROUNDING_ESTIMATE_SAFETY * np.abs(slack[i] - slack_reversed)
        if Relation(result.relation) is Relation.EQ:
            within |= np.abs(slack_reversed) <= result.tolerance[i]
        rounding[i[within]] = True
    if sensitive.any():
        i = np.flatnonzero(sensitive)
        moved = np.abs(slack[i] - slack_perturbed)
        within = ~np.isfinite(slack_perturbed) | (ROUNDING_ESTIMATE_SAFETY * moved >= np.abs(slack[i]))
        rounding[i[within]] = True
    verdicts = verdicts.copy()
    verdicts[rounding] = Verdict.EQUALITY
    return verdicts, rounding


def _accumulate(acc, result, verdicts, rounding, ce: ChunkEvaluation):
    applicable = result.applicable & (verdicts != Verdict.UNDEFINED)
    acc.counts[Verdict.UNDEFINED] += int(np.sum(result.applicable & (verdicts == Verdict.UNDEFINED)))
    if Relation(result.relation) is Relation.DEFINITION:
        acc.lhs.append(result.lhs[applicable])
        return
    # slack statistics and kept instances leave out what is rounding (its float slack is noise)
    informative = applicable & ~rounding
    acc.slacks.append(result.slack[informative])
    acc.rels.append(result.rel_slack[informative])
    for key in (Verdict.VIOLATED, Verdict.EQUALITY, Verdict.HOLDS):
        acc.counts[key] += int(np.sum(applicable & (verdicts == key)))
    acc.counts["rounding"] += int(np.sum(applicable & rounding))
    if np.any(applicable & (verdicts == Verdict.VIOLATED)):
        acc.smallest_m = ce.m if acc.smallest_m == 0 else min(acc.smallest_m, ce.m)
    if ce.m > KEEP_MAX_M:
        return
    idx = np.flatnonzero(informative)
    if not len(idx):
        return
    rel = result.rel_slack[idx]

    def kept(i):
        return KeptInstance(ce.setting, ce.make_inputs(int(i)), float(result.slack[i]),
                            float(result.rel_slack[i]), Verdict(verdicts[i]))

    # only instances that would enter the pools are turned into input dicts
    low_cut = acc.low[-1].rel_slack if len(acc.low) == KEEP else np.inf
    order = np.argsort(rel)[:KEEP]
    acc.keep("low", [kept(idx[j]) for j in order if rel[j] < low_cut])
    high_cut = acc.high[-1].rel_slack if len(acc.high) == KEEP else -np.inf
    order = np.argsort(rel)[::-1][:KEEP]
    acc.keep("high", [kept(idx[j]) for j in order if rel[j] > high_cut])


def _subset_slack(statement, variant, q_subset, union, index):
    """Slack of `index` (a subset of `union`) from the quantities of the instances `union`."""
    if q_subset is None or not len(index):
        return np.zeros(0)
    pos = np.searchsorted(union, index)
    return evaluate_variant(statement, variant, q_subset).slack[pos]


def evaluate_chunk(variants, ce: ChunkEvaluation, accs) -> None:
    """Evaluate the variants on one chunk, recheck suspect instances once per chunk, accumulate."""
    first = []
    for statement, variant in variants:
        v = variant
        result = evaluate_variant(statement, v, ce.q)
        if not result.applicable.any():
            continue
        first.append((statement, variant, v, result) + _first_pass(statement, v, result, ce.q))
    union_rev = np.unique(np.concatenate([np.flatnonzero(f[5]) for f in first] or [np.zeros(0, int)]))
    union_v = np.unique(np.concatenate([np.flatnonzero(f[6]) for f in first] or [np.zeros(0, int)]))
    q_rev = ce.recheck(union_rev) if len(union_rev) else None
    q_v = ce.perturb(union_v) if len(union_v) and ce.perturb is not None else None
    for statement, variant, v, result, verdicts, suspect, sensitive, rounding in first:
        if q_v is None:
            sensitive = np.zeros_like(sensitive)
        reversed_slack = _subset_slack(statement, v, q_rev, union_rev, np.flatnonzero(suspect))
        perturbed_slack = _subset_slack(statement, v, q_v, union_v, np.flatnonzero(sensitive))
        verdicts, rounding = _second_pass(result, verdicts, suspect, sensitive, reversed_slack, perturbed_slack,
                                          rounding)
        _accumulate(accs[(statement.id, variant.name)], result, verdicts, rounding, ce)


def bn_evaluation(chunk: families.BnChunk, seed: int) -> ChunkEvaluation:
    q = chunk.quantities()

    def perturb(index):
        return chunk.take(index).quantities(grad_y_bn=perturbed_gradient(q, [seed, chunk.m, 7], index))

    return ChunkEvaluation(q, chunk.m, Setting.BN_CHANNEL, chunk.instance,
                           lambda index: chunk.take(index).reversed().quantities(), perturb)


# (data points, input dimension) of the Lemma 4.5 toy model; the centred inputs must have rank d,
# so points >= d + 1 (three points in the plane is the lemma module's own default).
TOY_SHAPES = ((3, 2), (4, 2), (4, 3), (6, 4))


def toy_chunk(seed: int, points: int, d: int, n: int):
    """Inputs of the Lemma 4.5 toy model: X (n, points, d), targets t (n, points), W0 (n, d)."""
    rng = np.random.default_rng([seed, 45, points, d])
    return (rng.standard_normal((n, points, d)), rng.standard_normal((n, points)),
            rng.standard_normal((n, d)))


def _settings_of(statements):
    return {registry.setting_of(s, v) for s in statements for v in s.variants}


def _jobs(statements, instances):
    settings = _settings_of(statements)
    jobs = []
    if settings & {Setting.BN_CHANNEL, Setting.WEIGHT_SPACE}:
        by_cell = {}
        for spec in families.plan(instances):
            by_cell.setdefault((spec.group, spec.m), []).append(spec)
        jobs += [("bn", tuple(specs)) for specs in by_cell.values()]
    if Setting.NETWORK in settings:
        jobs += [("dln", spec) for spec in dln.plan(instances)]
    if Setting.TOY_REGRESSION in settings:
        # Lemma 4.5's condition <W0, W*> > 0 holds for about half of the draws: draw twice as many
        per = -(-2 * instances // len(TOY_SHAPES)) + 8
        jobs += [("toy", (p, d, per)) for p, d in TOY_SHAPES]
    return jobs


def run_job(job, statement_ids, seed) -> dict:
    """Accumulators {(id, variant): _Accumulator} of one job (a chunk of one setting)."""
    statements = registry.resolve(statement_ids)
    variants = [(s, v) for s in statements for v in s.variants]
    accs = {(s.id, v.name): _Accumulator(v.relation) for s, v in variants}
    kind, spec = job
    if kind == "bn":
        chunk = families.merge_chunks([families.sample_chunk(seed, c.group, c.head, c.m, c.n) for c in spec])
        bn_variants = [(s, v) for s, v in variants if registry.setting_of(s, v) in (Setting.BN_CHANNEL, Setting.WEIGHT_SPACE)]
        evaluate_chunk(bn_variants, bn_evaluation(chunk, seed), accs)
    elif kind == "dln":
        depth, width, n = spec
        inst = dln.sample_dln(seed, n, depth, width)
        net = [(s, v) for s, v in variants if registry.setting_of(s, v) is Setting.NETWORK]
        evaluate_chunk(net, ChunkEvaluation(dln.dln_quantities(inst), width, Setting.NETWORK,
                                            lambda i: dln_instance(inst, i),
                                            lambda index: dln.dln_quantities(_dln_take(inst, index))), accs)
    else:
        p, d, n = spec
        X, t, W0 = toy_chunk(seed, p, d, n)
        toy = [(s, v) for s, v in variants if registry.setting_of(s, v) is Setting.TOY_REGRESSION]
        evaluate_chunk(toy, ChunkEvaluation(
            lemma45.toy_quantities_numpy(X, t, W0), d, Setting.TOY_REGRESSION,
            lambda i: dict(X=X[i], t=t[i], W0=W0[i]),
            lambda index: lemma45.toy_quantities_numpy(X[index][:, ::-1], t[index][:, ::-1], W0[index])), accs)
    return {k: a for k, a in accs.items() if a.slacks or a.lhs or any(a.counts.values())}


def _merge(into: _Accumulator, acc: _Accumulator) -> None:
    into.slacks += acc.slacks
    into.rels += acc.rels
    into.lhs += acc.lhs
    for k, v in acc.counts.items():
        into.counts[k] += v
    into.keep("low", list(acc.low))
    into.keep("high", list(acc.high))
    if acc.smallest_m:
        into.smallest_m = acc.smallest_m if not into.smallest_m else min(into.smallest_m, acc.smallest_m)


def default_workers() -> int:
    """Worker processes for the sweep: one per core, at most 2 (this project's machine); 1 where
    forking a multi-threaded process is unsafe (Python >= 3.12 warns)."""
    if sys.version_info >= (3, 12) and threading.active_count() > 1:
        return 1
    return max(1, min(2, os.cpu_count() or 1))


def run_sweep(statements=registry.STATEMENTS, instances: int = 10_000, seed: int = 0, progress=None,
              workers: int = 1) -> dict:
    """{(id, variant): VariantSweep} over every family, >= `instances` instances per group.

    Jobs (chunks) run in `workers` forked processes; their accumulators are merged in job order,
    so the result does not depend on the number of workers."""
    ids = [s.id for s in statements]
    variants = [(s, v) for s in statements for v in s.variants]
    accs = {(s.id, v.name): _Accumulator(v.relation) for s, v in variants}
    jobs = _jobs(statements, instances)
    total = sum(_job_size(j) for j in jobs)
    done = 0
    if workers > 1 and len(jobs) > 1:
        import multiprocessing
        pool = multiprocessing.get_context("fork").Pool(workers)
        results = pool.imap(functools.partial(run_job, statement_ids=ids, seed=seed), jobs, chunksize=1)
    else:
        pool = None
        results = (run_job(job, ids, seed) for job in jobs)
    try:
        for job, job_accs in zip(jobs, results):
            for key, acc in job_accs.items():
                _merge(accs[key], acc)
            done += _job_size(job)
            if progress is not None:
                progress(done, total)
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    return {key: _summary(key, acc) for key, acc in accs.items()}


def _job_size(job):
    kind, spec = job
    return sum(c.n for c in spec) if kind == "bn" else spec[-1]


def _dln_take(inst: dln.DlnInstances, index):
    return dln.DlnInstances(tuple(W[index] for W in inst.weights), inst.X[index][:, :, ::-1],
                            inst.T[index][:, :, ::-1], inst.lr[index], inst.layer)


def dln_instance(inst: dln.DlnInstances, i: int) -> dict:
    return dict(weights=[W[i] for W in inst.weights], X=inst.X[i], T=inst.T[i], lr=float(inst.lr[i]),
                layer=inst.layer)


def _summary(key, acc: _Accumulator) -> VariantSweep:
    sid, name = key
    nan = float("nan")
    if Relation(acc.relation) is Relation.DEFINITION:
        lhs = np.concatenate(acc.lhs) if acc.lhs else np.zeros(0)
        lhs_summary = (float(lhs.min()), float(np.median(lhs)), float(lhs.max())) if lhs.size else ()
        return VariantSweep(sid, name, acc.relation, int(lhs.size), 0, 0, 0, 0, acc.counts[Verdict.UNDEFINED],
                            nan, nan, nan, nan, nan, (), (), lhs_summary)
    slack = np.concatenate(acc.slacks) if acc.slacks else np.zeros(0)
    rel = np.concatenate(acc.rels) if acc.rels else np.zeros(0)
    c = acc.counts
    instances = c[Verdict.VIOLATED] + c[Verdict.EQUALITY] + c[Verdict.HOLDS]
    stats = (float(slack.min()), float(np.median(slack)), float(slack.max()), float(rel.min()), float(rel.max())) \
        if slack.size else (nan,) * 5
    return VariantSweep(sid, name, acc.relation, int(instances), c[Verdict.VIOLATED], c[Verdict.EQUALITY],
                        c[Verdict.HOLDS], c["rounding"], c[Verdict.UNDEFINED], *stats, tuple(acc.low), tuple(acc.high),
                        smallest_m_violated=acc.smallest_m)
