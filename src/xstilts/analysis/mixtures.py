"""Complementarity of multi-task intermediate mixtures (research question d).

Inputs are per-arm scores per target (the mean over seeds of each run's zero-shot mean) and
each arm's intermediate task set. A mixture arm (two or more tasks) is compared with its
single-task members: the best member, the members' mean, and the additive expectation
baseline + sum of the members' gains (gain = single - baseline). A mixture above the additive
expectation is complementary; below its best member, its tasks interfere.

    >>> scores = {("none", "xnli"): 70.0, ("a", "xnli"): 72.0, ("b", "xnli"): 71.0, ("ab", "xnli"): 74.0}
    >>> members = {"none": "", "a": "a", "b": "b", "ab": "a+b"}
    >>> complementarity_table(scores, members, baseline="none").rows[0][8:]  # vs best, mean, additive
    [2.0, 2.5, 1.0]
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from xstilts.analysis.frame import primary, zero_shot
from xstilts.analysis.model import Table

Scores = dict[tuple[str, str], float]


def task_set(members: str | Iterable[str] | None) -> frozenset[str]:
    """An arm's intermediate tasks from a "+"-joined frame cell or a list."""
    if members is None:
        return frozenset()
    names = members.split("+") if isinstance(members, str) else members
    return frozenset(name for name in names if name)


def arm_scores(frame: pd.DataFrame, *, arm_column: str, split: str = "test") -> tuple[Scores, dict[str, str]]:
    """(arm, target) -> mean over the arm's runs (seeds) of each run's zero-shot mean score, and
    arm -> its "+"-joined intermediate tasks, from the study frame.

    Uses the target phase's "score" rows of the full split (no subset), every language except the
    task's training language.
    """
    rows = zero_shot(primary(frame))
    rows = rows[(rows["phase"] == "target") & (rows["split"] == split)]
    if "subset" in rows.columns:
        rows = rows[rows["subset"].fillna("") == ""]
    per_run = rows.groupby([arm_column, "task", "run"])["value"].mean()
    per_arm = per_run.groupby(level=[0, 1]).mean()
    scores = {(str(arm), str(task)): float(value) for (arm, task), value in per_arm.items()}
    members = {str(arm): str(group.iloc[0]) for arm, group in frame.groupby(arm_column)["intermediate"]}
    return scores, members


def _singles(members: dict[str, frozenset[str]]) -> tuple[dict[str, str], list[str]]:
    """Task -> the single-task arm training only it; notes on tasks with several such arms."""
    singles: dict[str, str] = {}
    notes = []
    for arm in sorted(members):
        if len(members[arm]) == 1:
            (task,) = members[arm]
            if task in singles:
                notes.append(f"Arms {singles[task]} and {arm} both train only {task}: {singles[task]} is used.")
            else:
                singles[task] = arm
    return singles, notes


def _baseline(members: dict[str, frozenset[str]], baseline: str | None) -> str | None:
    if baseline is not None:
        return baseline
    empty = [arm for arm, tasks in members.items() if not tasks]
    return empty[0] if len(empty) == 1 else None


def _targets(scores: Scores) -> list[str]:
    return sorted({target for _, target in scores})


def complementarity_table(
    scores: Scores, members: dict[str, str | Iterable[str]], *, baseline: str | None = None
) -> Table:
    """Each mixture vs its best single member, its members' mean and the additive expectation.

    Args:
        scores: (arm, target) -> score (mean over seeds of the zero-shot mean).
        members: arm -> its intermediate tasks ("+"-joined or a list; "" for no intermediate task).
        baseline: the arm without intermediate training; default the one arm with no tasks.

    Returns:
        One row per (target, mixture arm) whose members all have a single-task arm: target,
        mixture, members, mixture score, best member (arm), best member score, members' mean,
        baseline + sum of gains, and the mixture minus each of the last three. Mixtures left
        out, and a missing baseline, are named in the notes.
    """
    sets = {arm: task_set(tasks) for arm, tasks in members.items()}
    singles, notes = _singles(sets)
    base = _baseline(sets, baseline)
    rows, left_out = [], []
    for target in _targets(scores):
        base_score = scores.get((base, target)) if base is not None else None
        for arm in sorted(arm for arm, tasks in sets.items() if len(tasks) >= 2):
            if (arm, target) not in scores:
                continue
            single_arms = [singles.get(task) for task in sorted(sets[arm])]
            if any(single is None or (single, target) not in scores for single in single_arms):
                left_out.append(f"{arm} on {target}")
                continue
            mixture = scores[(arm, target)]
            single_scores = {single: scores[(single, target)] for single in single_arms}
            best = max(single_scores, key=lambda single: (single_scores[single], single))
            mean = sum(single_scores.values()) / len(single_scores)
            additive = None if base_score is None else base_score + sum(s - base_score for s in single_scores.values())
            rows.append([
                target, arm, "+".join(sorted(sets[arm])), mixture, best, single_scores[best], mean, additive,
                mixture - single_scores[best], mixture - mean, None if additive is None else mixture - additive,
            ])
    notes.insert(0, "gain = single-task arm - baseline; additive = baseline + sum of the members' gains.")
    if base is None or not any((base, target) in scores for target in _targets(scores)):
        notes.append("No baseline arm (no intermediate task) was found: the additive columns are blank.")
    if left_out:
        notes.append(f"Left out (a member has no single-task arm): {', '.join(left_out)}.")
    columns = ["target", "mixture", "members", "mixture score", "best member", "best member score", "members' mean",
               "additive", "mixture - best", "mixture - mean", "mixture - additive"]
    return Table(title="Mixtures vs their single-task members", columns=columns, rows=rows, notes=notes, name="mixtures")


def pairwise_gain_matrix(
    scores: Scores, members: dict[str, str | Iterable[str]], target: str
) -> tuple[list[str], list[list[float | None]]]:
    """The single tasks (sorted) and the symmetric matrix of pair gains on one target: cell
    (a, b) = score of the mixture of exactly {a, b} - the better of a's and b's single-task
    scores; None on the diagonal and where the pair's mixture or a single arm is missing."""
    sets = {arm: task_set(tasks) for arm, tasks in members.items()}
    singles, _ = _singles(sets)
    tasks = sorted(task for task, arm in singles.items() if (arm, target) in scores)
    pairs = {tasks_: arm for arm, tasks_ in sorted(sets.items(), reverse=True) if len(tasks_) == 2}
    matrix: list[list[float | None]] = []
    for a in tasks:
        row: list[float | None] = []
        for b in tasks:
            pair = pairs.get(frozenset({a, b})) if a != b else None
            if pair is None or (pair, target) not in scores:
                row.append(None)
                continue
            better = max(scores[(singles[a], target)], scores[(singles[b], target)])
            row.append(scores[(pair, target)] - better)
        matrix.append(row)
    return tasks, matrix


def pairwise_gain_tables(scores: Scores, members: dict[str, str | Iterable[str]]) -> list[Table]:
    """One pairwise gain matrix per target (see `pairwise_gain_matrix`), as Tables."""
    tables = []
    for target in _targets(scores):
        tasks, matrix = pairwise_gain_matrix(scores, members, target)
        if not tasks:
            continue
        tables.append(Table(
            title=f"Pairwise mixture gains on {target}",
            columns=["task", *tasks],
            rows=[[task, *row] for task, row in zip(tasks, matrix, strict=True)],
            notes=["Cell: score of the two tasks' mixture - the better of their single-task scores; blank: no such mixture."],
            name=f"pair-gains-{target}",
        ))
    return tables
