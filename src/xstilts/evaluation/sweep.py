"""The zero-shot sweep: one head, every language of the task, in one process."""

from __future__ import annotations

from pathlib import Path

import torch
from rich.progress import Progress
from transformers import PreTrainedTokenizerBase

from xstilts.config.schema import Precision, TextToTextConfig
from xstilts.data.io import is_labelled
from xstilts.data.loading import load_examples
from xstilts.evaluation.leaderboard import prediction_path, render_predictions
from xstilts.evaluation.predict import predict_split
from xstilts.evaluation.records import records_path, write_records
from xstilts.evaluation.subsets import subset_rows, with_failure_rate
from xstilts.atomic import atomic_write_text
from xstilts.results import ResultRow
from xstilts.formats.base import get_format
from xstilts.models.multitask import MultiTaskModel
from xstilts.models.text_to_text import TextToTextModel
from xstilts.tasks.spec import TaskSpec


def run_zero_shot_sweep(
    model: MultiTaskModel | TextToTextModel,
    tokenizer: PreTrainedTokenizerBase,
    spec: TaskSpec,
    *,
    languages: list[str],
    splits: list[str],
    data_dir: Path | None,
    max_length: int,
    batch_size: int,
    device: torch.device,
    precision: Precision,
    run_id: str,
    phase: str,
    predictions_dir: Path,
    progress: Progress | None = None,
    text_to_text: TextToTextConfig | None = None,
) -> list[ResultRow]:
    """Predict with the task head on every (split, language) and score the labelled ones.

    Every split's predictions are written in the leaderboard layout; an unlabelled split (a
    test file whose labels are withheld) gets its predictions file and no result rows. Rows
    are returned, not stored, so the caller can store a phase's rows all at once. With
    `text_to_text` (the settings of text-to-text mode) the model reads and writes text.
    """
    fmt = get_format(spec.format, text_to_text)
    rows: list[ResultRow] = []
    bar = progress.add_task(f"zero-shot {spec.name}", total=len(languages) * len(splits)) if progress else None
    for split in splits:
        for language in languages:
            examples = load_examples(spec, split, language, data_dir, allow_unlabelled=True)
            features = fmt.featurize(examples, tokenizer, spec, max_length)
            predictions = predict_split(
                model, spec, fmt, examples, features, tokenizer=tokenizer, device=device, precision=precision, batch_size=batch_size
            )
            atomic_write_text(
                prediction_path(predictions_dir, spec, split, language), render_predictions(spec, predictions, examples)
            )
            if all(is_labelled(example) for example in examples):
                write_records(records_path(predictions_dir, spec.name, split, language), examples, predictions)
                rows.extend(
                    ResultRow(run_id, phase, spec.name, language, split, metric, value)
                    for metric, value in with_failure_rate(spec, fmt.score(predictions, examples, spec)).items()
                )
                rows.extend(
                    subset_rows(
                        spec, split, language, examples, predictions, run_id=run_id, phase=phase, data_dir=data_dir,
                        load=lambda split_, language_: load_examples(spec, split_, language_, data_dir, allow_unlabelled=True),
                    )
                )
            if bar is not None:
                progress.update(bar, advance=1, description=f"zero-shot {spec.name} {split}-{language}")
    return rows
