"""The report's claims: which algorithm is ahead at this budget, and the "Did it learn?" section behind it.

Every claim comes from the comparison's fixed, paired evaluation (:class:`agents.evaluation.EvaluationResult`):
each algorithm's gain with its interval, the pairwise differences of the gains with their bootstrap
intervals, one sentence on which is ahead (:func:`verdict`), and the fluency guards.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from agents.evaluation import GainDifference, gain_difference
from agents.markdown import code_span, table
from agents.summary import Estimate
from textenv_common.formatting import format_number

if TYPE_CHECKING:
    from agents.evaluation import EvaluationResult

__all__ = ["learning_section", "verdict"]


def _signed(value: float, digits: int = 3) -> str:
    return f"{value:+.{digits}f}" if math.isfinite(value) else "—"


def _ci(estimate: Estimate, digits: int = 3) -> str:
    """``+0.312 [+0.250, +0.374]``: a mean with its interval's ends."""
    if estimate.n == 0 or not math.isfinite(estimate.mean):
        return "—"
    if not math.isfinite(estimate.half_width):
        return f"{_signed(estimate.mean, digits)} (n=1)"
    low, high = estimate.mean - estimate.half_width, estimate.mean + estimate.half_width
    return f"{_signed(estimate.mean, digits)} [{_signed(low, digits)}, {_signed(high, digits)}]"


def verdict(evaluation: EvaluationResult) -> tuple[str, list[GainDifference]]:
    """One plain sentence on which algorithm is ahead at this budget, and the pairwise differences behind it."""
    algos = list(evaluation.gains)
    diffs = [
        gain_difference(evaluation.gains[a], evaluation.gains[b], (a, b))
        for i, a in enumerate(algos)
        for b in algos[i + 1 :]
    ]
    if not diffs:
        return "Only one algorithm ran, so there is nothing to separate.", diffs
    sentences = []
    for d in diffs:
        ahead, behind = (d.a, d.b) if d.mean > 0 else (d.b, d.a)
        if d.excludes_zero():
            sentences.append(
                f"At this budget {ahead} is ahead of {behind}: its gain is larger by {abs(d.mean):.3f} "
                f"(95% CI of {d.a} − {d.b}: [{d.low:+.3f}, {d.high:+.3f}])."
            )
        else:
            sentences.append(
                f"This budget cannot separate {d.a} from {d.b}: the 95% CI of {d.a} − {d.b}, "
                f"[{d.low:+.3f}, {d.high:+.3f}], contains 0."
            )
    return " ".join(sentences), diffs


def learning_section(evaluation: EvaluationResult) -> list[str]:
    """Gains with CIs, the pairwise difference, the verdict and the fluency guards."""
    start = evaluation.policy("start")
    k = evaluation.samples_per_prompt
    lines = [
        "## Did it learn?",
        "",
        f"Fixed, paired evaluation: {evaluation.prompts} evaluation prompts × {k} samples, the same prompts and "
        "sampling variates for the starting policy (*before*) and every tuned policy (*after*); "
        f"{evaluation.prompts * k} completions per policy and seed.",
        "",
    ]
    sentence, diffs = verdict(evaluation)
    lines += [f"**{sentence}**", ""]
    header = ["algorithm", "seeds", "RM before", "RM after", "gain [95% CI]", "gain per seed", "win rate vs start"]
    rows = []
    for algo, matrix in evaluation.gains.items():
        p = evaluation.policy(algo)
        rows.append(
            [
                code_span(algo, in_table=True),
                ", ".join(map(str, p.seeds)),
                format_number(start.metrics["rm_score"].mean),
                format_number(p.metrics["rm_score"].mean),
                _ci(p.metrics["gain"]),
                ", ".join(_signed(float(g)) for g in matrix.mean(axis=1)),
                format_number(p.metrics["win_rate"].mean),
            ]
        )
    lines += [*table(header, rows, "llrrrrr"), ""]
    for d in diffs:
        lines += [
            f"- **{d.a} − {d.b}**: {d.mean:+.3f}, 95% CI [{d.low:+.3f}, {d.high:+.3f}] (percentile bootstrap, "
            f"{d.resamples:,} resamples of the prompts and, per algorithm, of the seeds).",
        ]
    lines += [
        "- **gain**: per evaluation prompt, the mean RM score of the tuned completions (pooled over samples and "
        "seeds) less the starting policy's; the interval is Student's t over prompts of these paired differences. "
        "**gain per seed** shows the spread that training adds.",
        "",
        "### Fluency guards",
        "",
    ]
    header = ["policy", "KL per episode (nats)", "perplexity under ref", "distinct-1", "distinct-2", "length"]
    names = ["kl", "perplexity", "distinct_1", "distinct_2", "length"]
    rows = [[code_span(p.name, in_table=True), *(p.metrics[m].format() for m in names)] for p in evaluation.policies]
    lines += [*table(header, rows), ""]
    ppl0 = start.metrics["perplexity"].mean
    for p in evaluation.policies[1:]:
        ratio = p.metrics["perplexity"].mean / ppl0 if ppl0 else math.nan
        lines.append(
            f"- `{p.name}`: KL {format_number(p.metrics['kl'].mean)} nats per episode; perplexity under the reference "
            f"{format_number(ratio, 2)}× the starting policy's."
        )
    lines += [
        "",
        "Mean over prompts ± 95% t half-width. The starting policy *is* the reference, so its KL is 0; a tuned "
        "policy that buys reward by leaving fluent text shows a high KL, a perplexity far above the start's, or "
        "distinct-n falling (its samples of a prompt collapsing onto one text).",
        "",
    ]
    return lines
