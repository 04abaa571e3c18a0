"""Model selection beside English dev, stored side by side with the zero-shot rows.

- phase "target": the checkpoint of the epoch with the best English dev score (zero-shot proper);
- phase "target-average": the parameter-wise mean of the last k epochs' weights, every eval
  split and language (needs no target-language dev set);
- phase "target-oracle": per language, the epoch with the best dev score of that language, its
  rows on the other eval splits (an upper bound: it selects on target-language data).

Their predictions go to RUN_DIR/predictions-average/ and RUN_DIR/predictions-oracle/, beside
the target's RUN_DIR/predictions/; RUN_DIR/selection.json says which epochs each used and
every epoch's dev score per language.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import torch
from rich.console import Console
from torch import nn

from xstilts.atomic import atomic_write_text
from xstilts.config.schema import SelectionConfig
from xstilts.errors import UserError
from xstilts.evaluation.predict import primary_score
from xstilts.results import ResultRow
from xstilts.tasks.spec import Format, TaskSpec
from xstilts.training.checkpoint import read_metadata
from xstilts.training.selection import EpochSnapshots, averaged_epochs, oracle_epochs

if TYPE_CHECKING:  # phases imports this module
    from xstilts.experiments.phases import RunContext

PHASE_AVERAGE = "target-average"
PHASE_ORACLE = "target-oracle"
SELECTION_FILE = "selection.json"
AVERAGE_PREDICTIONS = "predictions-average"
ORACLE_PREDICTIONS = "predictions-oracle"


class Sweep(Protocol):
    """The target's zero-shot sweep of the model's current weights (experiments.zero_shot with the run's settings)."""

    def __call__(self, *, phase: str, splits: list[str], languages: list[str], predictions_dir: Path) -> list[ResultRow]: ...


def epoch_snapshots(ctx: RunContext, key: str) -> EpochSnapshots | None:
    """Where the target training with `key` keeps the epochs selection needs; None when it is off."""
    selection = ctx.config.target.selection
    return EpochSnapshots(ctx.store.home / "selection" / f"target-{key}", selection) if selection.enabled else None


def check_selection(spec: TaskSpec, selection: SelectionConfig, console: Console) -> bool:
    """Whether the target can be selected otherwise than on English dev.

    Raises:
        UserError: the oracle is asked for on a task without a dev split.
    """
    if not selection.enabled:
        return False
    if spec.format is Format.RETRIEVAL:
        console.print(f"target.selection: {spec.name} is a retrieval task, which trains nothing: no epochs to select from")
        return False
    if selection.oracle and "dev" not in spec.splits:
        raise UserError(
            f"key 'target.selection.oracle': task {spec.name!r} has no dev split to choose epochs on "
            f"(its splits: {', '.join(spec.splits)})"
        )
    return True


def load_weights(model: nn.Module, state: dict[str, torch.Tensor], source: Path) -> None:
    """Load a snapshot or an average into the evaluated model, strictly."""
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise UserError(f"{source}: the epoch weights do not fit the target model ({str(exc).strip().splitlines()[-1]})") from None


def dev_scores_by_language(rows: list[ResultRow], spec: TaskSpec) -> dict[str, float]:
    """Each language's primary dev score (the number the scorer averages) from a dev sweep's rows."""
    metrics: dict[str, dict[str, float]] = {}
    for row in rows:
        if row.split == "dev":  # not the subsets, stored as "dev/<subset>"
            metrics.setdefault(row.language, {})[row.metric] = row.value
    return {language: primary_score(scores, spec) for language, scores in metrics.items()}


def evaluate_average(
    model: nn.Module, snapshots: EpochSnapshots, epochs: list[int], sweep: Sweep, run_dir: Path, *,
    splits: list[str], languages: list[str],
) -> tuple[list[ResultRow], dict]:
    """Rows of the mean of the last `average_last` kept epochs, on every split and language."""
    averaged = averaged_epochs(epochs, snapshots.selection.average_last)
    load_weights(model, snapshots.average(averaged), snapshots.folder)
    rows = sweep(phase=PHASE_AVERAGE, splits=splits, languages=languages, predictions_dir=run_dir / AVERAGE_PREDICTIONS)
    return rows, {"epochs": averaged}


def evaluate_oracle(
    model: nn.Module, snapshots: EpochSnapshots, epochs: list[int], sweep: Sweep, run_dir: Path, spec: TaskSpec, *,
    splits: list[str], languages: list[str],
) -> tuple[list[ResultRow], dict]:
    """Every kept epoch on every language's dev split; per language, the rows of the best
    epoch on the other eval splits. Dev predictions go to a scratch folder, not the run's."""
    dev: dict[int, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="xstilts-oracle-") as scratch:
        for epoch in epochs:
            load_weights(model, snapshots.load(epoch), snapshots.path(epoch))
            dev_rows = sweep(phase=PHASE_ORACLE, splits=["dev"], languages=languages, predictions_dir=Path(scratch) / str(epoch))
            dev[epoch] = dev_scores_by_language(dev_rows, spec)
    chosen = oracle_epochs(dev)
    rows: list[ResultRow] = []
    reported = [split for split in splits if split != "dev"]
    for epoch in sorted(set(chosen.values())):
        load_weights(model, snapshots.load(epoch), snapshots.path(epoch))
        mine = [language for language in languages if chosen.get(language) == epoch]
        rows += sweep(phase=PHASE_ORACLE, splits=reported, languages=mine, predictions_dir=run_dir / ORACLE_PREDICTIONS)
    by_language = {language: {str(epoch): dev[epoch][language] for epoch in epochs if language in dev[epoch]} for language in languages}
    return rows, {"metric": spec.metric.value, "splits": reported, "chosen": chosen, "dev": by_language}


def run_selection(
    ctx: RunContext, model: nn.Module, spec: TaskSpec, checkpoint: Path, sweep: Sweep, *,
    splits: list[str], languages: list[str],
) -> list[ResultRow]:
    """The averaged and oracle rows of the target trained as `checkpoint`, from its epoch
    snapshots (loaded into `model`, whose weights change); writes RUN_DIR/selection.json and
    removes the snapshots when every evaluation succeeded (unless the config keeps them)."""
    metadata = read_metadata(checkpoint)
    snapshots = epoch_snapshots(ctx, metadata["key"])
    epochs = snapshots.require()
    failed_before = len(ctx.errors)
    report: dict = {"english_dev_epoch": metadata.get("best_epoch"), "kept_epochs": epochs}
    rows: list[ResultRow] = []
    if snapshots.selection.average_last:
        average_rows, report["average"] = evaluate_average(
            model, snapshots, epochs, sweep, ctx.run_dir, splits=splits, languages=languages
        )
        rows += average_rows
    if snapshots.selection.oracle:
        oracle_rows, report["oracle"] = evaluate_oracle(
            model, snapshots, epochs, sweep, ctx.run_dir, spec, splits=splits, languages=languages
        )
        rows += oracle_rows
    if len(ctx.errors) == failed_before:  # a partial run keeps them: its rerun evaluates without training
        snapshots.discard()
    report["snapshots"] = str(snapshots.folder) if snapshots.folder.exists() else None
    atomic_write_text(ctx.run_dir / SELECTION_FILE, json.dumps(report, indent=1))
    return rows
