"""Ensembles: average the members' predicted probabilities and measure the gain over the best member.

Averaging softmax outputs of independently trained networks lowers the
variance of the prediction (the book, ch. 8.1.2, lists ensembles among the
ways to push accuracy higher); the gain is largest when members make
different mistakes.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["average_probabilities", "EnsembleReport", "ensemble_report", "format_ensemble_report"]


def _stack(prob_list, where: str) -> np.ndarray:
    probs = [np.asarray(p, dtype=np.float64) for p in prob_list]
    if len(probs) < 1:
        raise ValueError(f"{where}: need at least one member's probabilities")
    for i, p in enumerate(probs):
        if p.ndim != 2:
            raise ValueError(f"{where}: member {i} probabilities must be (N, K), got shape {p.shape}")
        if p.shape != probs[0].shape:
            raise ValueError(f"{where}: member {i} has probabilities of shape {p.shape}, member 0 {probs[0].shape}; "
                             "members must predict the same samples and number of classes")
    return np.stack(probs)


def average_probabilities(prob_list, weights=None) -> np.ndarray:
    """(Weighted) mean of members' ``(N, K)`` probabilities -> ``(N, K)``.

    ``weights``: one non-negative number per member (normalised to sum 1); default equal.
    """
    stacked = _stack(prob_list, "average_probabilities")
    if weights is None:
        return stacked.mean(axis=0)
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (len(stacked),) or (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"average_probabilities: weights must be {len(stacked)} non-negative numbers with a "
                         f"positive sum, got {weights!r}")
    return np.tensordot(w / w.sum(), stacked, axes=1)


class EnsembleReport(NamedTuple):
    """Accuracies of the members and of their average."""

    names: list
    member_accuracy: list
    ensemble_accuracy: float
    best_member: str
    gain: float  # ensemble accuracy minus the best member's, in [−1, 1]


def ensemble_report(prob_list, labels, names=None, weights=None) -> EnsembleReport:
    """Compare each member's accuracy with the averaged ensemble's on ``labels`` ``(N,)``."""
    stacked = _stack(prob_list, "ensemble_report")
    labels = np.asarray(labels)
    if labels.shape != (stacked.shape[1],):
        raise ValueError(f"ensemble_report: labels must be ({stacked.shape[1]},), got shape {labels.shape}")
    names = [f"member{i}" for i in range(len(stacked))] if names is None else [str(n) for n in names]
    if len(names) != len(stacked):
        raise ValueError(f"ensemble_report: {len(names)} names for {len(stacked)} members")
    member = [float(np.mean(p.argmax(axis=1) == labels)) for p in stacked]
    ens = float(np.mean(average_probabilities(stacked, weights).argmax(axis=1) == labels))
    best = int(np.argmax(member))
    return EnsembleReport(names, member, ens, names[best], ens - member[best])


def format_ensemble_report(report: EnsembleReport) -> str:
    """A small text table of the report (percentages)."""
    width = max(8, *(len(n) for n in report.names))
    lines = [f"{'member'.ljust(width)}  accuracy"]
    lines += [f"{n.ljust(width)}  {100 * a:7.2f}%" for n, a in zip(report.names, report.member_accuracy)]
    lines.append(f"{'ensemble'.ljust(width)}  {100 * report.ensemble_accuracy:7.2f}%")
    lines.append(f"gain over the best member ({report.best_member}): {100 * report.gain:+.2f} points")
    return "\n".join(lines)
