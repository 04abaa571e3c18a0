"""The zero-shot sweep: one head, every language of the task, in one process.

Reading and featurising the next (split, language) runs in a background thread while the
current one is predicted, so the accelerator does not wait for the tokenizer between languages.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import torch
from rich.progress import Progress
from transformers import PreTrainedTokenizerBase

from xstilts.config.schema import Precision, TextToTextConfig
from xstilts.data.feature_cache import FeatureCache, featurize_cached
from xstilts.data.io import Example, is_labelled
from xstilts.data.loading import load_examples
from xstilts.evaluation.leaderboard import prediction_path, render_predictions
from xstilts.evaluation.predict import predict_split
from xstilts.evaluation.records import records_path, write_records
from xstilts.evaluation.subsets import subset_rows, with_failure_rate
from xstilts.atomic import atomic_write_text
from xstilts.results import ResultRow
from xstilts.formats.base import Feature, TaskFormat, get_format
from xstilts.models.multitask import MultiTaskModel
from xstilts.models.text_to_text import TextToTextModel
from xstilts.tasks.spec import TaskSpec

Item = TypeVar("Item")
Loaded = TypeVar("Loaded")
SplitData = tuple[list[Example], list[Feature]]


def prefetched(items: list[Item], load: Callable[[Item], Loaded]) -> Iterator[tuple[Item, Callable[[], Loaded]]]:
    """Each item with a getter of `load(item)`; the next item loads in a background thread meanwhile.

    The getter re-raises what `load` raised, so the caller handles a failed load where it
    handles a failed evaluation, in the items' order. At most two loaded items are held.
    """
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="xstilts-prefetch")
    try:
        upcoming = pool.submit(load, items[0]) if items else None
        for index, item in enumerate(items):
            current = upcoming
            upcoming = pool.submit(load, items[index + 1]) if index + 1 < len(items) else None
            yield item, current.result
            current = None  # the caller has the features: do not hold them through the next item
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def split_loader(
    spec: TaskSpec, fmt: TaskFormat, tokenizer: PreTrainedTokenizerBase, *, data_dir: Path | None, max_length: int,
    feature_cache: FeatureCache | None = None, text_to_text: TextToTextConfig | None = None,
    log: Callable[[str], None] | None = None,
) -> Callable[[str, str], SplitData]:
    """`load(split, language) -> (examples, features)`, featurised through the feature cache, for a background thread."""
    # Its own tokenizer: a fast tokenizer used by two threads at once fails ("Already borrowed")
    # when one changes its truncation settings while the other encodes or decodes.
    worker_tokenizer = copy.deepcopy(tokenizer)

    def load(split: str, language: str) -> SplitData:
        examples = load_examples(spec, split, language, data_dir, allow_unlabelled=True)
        features = featurize_cached(
            fmt, examples, worker_tokenizer, spec, max_length, cache=feature_cache, settings=text_to_text, log=log
        )
        return examples, features

    return load


def score_split(
    model: MultiTaskModel | TextToTextModel, tokenizer: PreTrainedTokenizerBase, spec: TaskSpec, fmt: TaskFormat,
    split: str, language: str, data: SplitData, *, data_dir: Path | None, batch_size: int, device: torch.device,
    precision: Precision, run_id: str, phase: str, predictions_dir: Path,
) -> list[ResultRow]:
    """Predict one featurised (split, language), write its predictions (and records) and score it if labelled."""
    examples, features = data
    predictions = predict_split(
        model, spec, fmt, examples, features, tokenizer=tokenizer, device=device, precision=precision, batch_size=batch_size
    )
    atomic_write_text(prediction_path(predictions_dir, spec, split, language), render_predictions(spec, predictions, examples))
    if not all(is_labelled(example) for example in examples):
        return []
    write_records(records_path(predictions_dir, spec.name, split, language), examples, predictions)
    rows = [
        ResultRow(run_id, phase, spec.name, language, split, metric, value)
        for metric, value in with_failure_rate(spec, fmt.score(predictions, examples, spec)).items()
    ]
    rows.extend(
        subset_rows(
            spec, split, language, examples, predictions, run_id=run_id, phase=phase, data_dir=data_dir,
            load=lambda split_, language_: load_examples(spec, split_, language_, data_dir, allow_unlabelled=True),
        )
    )
    return rows


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
    feature_cache: FeatureCache | None = None,
) -> list[ResultRow]:
    """Predict with the task head on every (split, language) and score the labelled ones.

    Every split's predictions are written in the leaderboard layout; an unlabelled split (a
    test file whose labels are withheld) gets its predictions file and no result rows. Rows
    are returned, not stored, so the caller can store a phase's rows all at once. With
    `text_to_text` (the settings of text-to-text mode) the model reads and writes text. The
    next pair is read and featurised (through `feature_cache`, if given) while one is predicted.
    """
    fmt = get_format(spec.format, text_to_text)
    load = split_loader(
        spec, fmt, tokenizer, data_dir=data_dir, max_length=max_length, feature_cache=feature_cache, text_to_text=text_to_text
    )
    rows: list[ResultRow] = []
    bar = progress.add_task(f"zero-shot {spec.name}", total=len(languages) * len(splits)) if progress else None
    pairs = [(split, language) for split in splits for language in languages]
    for (split, language), loaded in prefetched(pairs, lambda pair: load(*pair)):
        rows.extend(
            score_split(
                model, tokenizer, spec, fmt, split, language, loaded(), data_dir=data_dir, batch_size=batch_size,
                device=device, precision=precision, run_id=run_id, phase=phase, predictions_dir=predictions_dir,
            )
        )
        if bar is not None:
            progress.update(bar, advance=1, description=f"zero-shot {spec.name} {split}-{language}")
    return rows
