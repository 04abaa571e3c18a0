"""The zero-shot sweep of a trained head, one (split, language) at a time: a pair that fails
(a malformed file, an out-of-memory) becomes that pair's error, and the others keep their rows."""

from __future__ import annotations

import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from xstilts.config.schema import Precision
from xstilts.errors import UserError
from xstilts.evaluation.sweep import SplitData, prefetched, score_split, split_loader
from xstilts.formats.base import get_format
from xstilts.experiments.store import ErrorRow
from xstilts.results import ResultRow
from xstilts.tasks.spec import TaskSpec
from xstilts.training.checkpoint import LoadedCheckpoint

if TYPE_CHECKING:  # phases imports this module
    from xstilts.experiments.phases import RunContext


def one_line(exc: Exception) -> str:
    """An error's reason in one line: a user error's own message, else its type and first line."""
    lines = str(exc).strip().splitlines()
    first = lines[0] if lines else ""
    return first if isinstance(exc, UserError) else f"{type(exc).__name__}: {first}".rstrip(": ")


def sweep_each(
    ctx: RunContext, spec: TaskSpec, phase: str, splits: list[str], languages: list[str],
    evaluate: Callable[..., list[ResultRow]], load: Callable[[str, str], Any] | None = None,
) -> list[ResultRow]:
    """Call `evaluate(split, language)` for each pair on its own: a pair that fails (a malformed
    file, an out-of-memory) becomes that pair's error in `ctx.errors`; the others keep their rows.

    With `load`, `load(split, language)` of the next pair runs in a background thread while one
    is evaluated, and `evaluate(split, language, loaded)` gets its result (a failed load is that
    pair's error, as before)."""
    rows: list[ResultRow] = []
    bar = ctx.progress.add_task(f"zero-shot {spec.name}", total=len(splits) * len(languages)) if ctx.progress else None
    pairs = [(split, language) for split in splits for language in languages]
    for (split, language), loaded in prefetched(pairs, lambda pair: load(*pair) if load else None):
        try:
            rows.extend(evaluate(split, language) if load is None else evaluate(split, language, loaded()))
        except Exception as exc:  # noqa: BLE001 - recorded with its traceback; the run ends non-zero
            message = one_line(exc)
            ctx.errors.append(ErrorRow(ctx.run_id, phase, spec.name, language, split, message, traceback.format_exc()))
            ctx.console.print(f"[red]{spec.name} {split}-{language} failed:[/] {message}", highlight=False)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()  # what the failed batch held, for the next language
        if bar is not None:
            ctx.progress.update(bar, advance=1, description=f"zero-shot {spec.name} {split}-{language}")
    return rows


def zero_shot(
    ctx: RunContext, loaded: LoadedCheckpoint, spec: TaskSpec, *, phase: str, languages: list[str], splits: list[str],
    data_dir: Path | None, max_length: int, batch_size: int, precision: Precision, predictions_dir: Path | None = None,
) -> list[ResultRow]:
    """The zero-shot sweep of a trained head over every (split, language), each on its own;
    predictions go to `predictions_dir` (default RUN_DIR/predictions)."""
    predictions_dir = predictions_dir or ctx.run_dir / "predictions"

    fmt = get_format(spec.format, ctx.format_settings)
    load = split_loader(
        spec, fmt, loaded.tokenizer, data_dir=data_dir, max_length=max_length, feature_cache=ctx.feature_cache,
        text_to_text=ctx.format_settings, log=ctx.console.print,
    )

    def evaluate(split: str, language: str, data: SplitData) -> list[ResultRow]:
        return score_split(
            loaded.model, loaded.tokenizer, spec, fmt, split, language, data, data_dir=data_dir, batch_size=batch_size,
            device=ctx.device, precision=precision, run_id=ctx.run_id, phase=phase, predictions_dir=predictions_dir,
        )

    return sweep_each(ctx, spec, phase, splits, languages, evaluate, load)
