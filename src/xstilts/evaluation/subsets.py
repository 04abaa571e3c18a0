"""Subsets of a split declared in a task spec (`subsets:`), scored beside the split itself.

A subset is selected on one language's examples (the task's training language unless the subset
says otherwise) and carried BY ITEM INDEX to every other language of the same split: XNLI,
XCOPA, XQuAD, PAWS-X and the synthetic tasks are parallel, so index i is the same item in every
language, and a subset found hard on English is the same items everywhere. A language whose
split has another number of items cannot carry it (an error). `language: each` selects on each
language's own examples instead (MultiCheckList, whose languages are generated independently);
a language where it selects nothing then gets no rows for it, where any other subset that
selects nothing is an error.

An example without an `id` field has its 0-based index in the split as id.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from xstilts.data.io import Example, is_labelled
from xstilts.errors import UserError, did_you_mean
from xstilts.evaluation.records import score_records
from xstilts.results import ResultRow, subset_split
from xstilts.tasks.spec import EACH_LANGUAGE, Subset, TaskSpec

FAILURE_RATE = "failure_rate"
EXACT_MATCH = "exact_match"

# Loads the examples of (split, language): the sweep passes data.loading.load_examples bound to
# the task's data dir; tests pass a dict lookup.
ExampleLoader = Callable[[str, str], Sequence[Example]]


class EmptySubset(UserError):
    """A subset selects no example (with `language: each`, that language simply gets no rows)."""


def example_id(example: Example, index: int) -> str:
    """An example's id as subsets match it: its `id` field, else its 0-based index."""
    return str(example["id"]) if "id" in example else str(index)


def read_ids_file(spec: TaskSpec, name: str, path: str, data_dir: Path | None) -> list[str]:
    """The ids of an `ids_file` (one per line, blank lines ignored); relative to the data dir."""
    file = Path(path)
    if not file.is_absolute():
        if data_dir is None:
            raise UserError(f"{spec.origin}, subset {name!r}: ids_file {path!r} is relative, and the task has no data dir")
        file = Path(data_dir) / file
    if not file.is_file():
        raise UserError(f"{spec.origin}, subset {name!r}: ids_file {file} not found")
    return [line.strip() for line in file.read_text(encoding="utf-8").splitlines() if line.strip()]


def select(spec: TaskSpec, name: str, subset: Subset, examples: Sequence[Example], where: str, data_dir: Path | None) -> list[int]:
    """Indices (in file order) of the examples of one language that `subset` selects.

    Raises:
        UserError: an unknown column, ids that are not in the split, or an empty selection,
            one line naming the spec file, the subset and `where` (split-language).
    """
    if subset.column is not None:
        fields = sorted({field for example in examples for field in example})
        if subset.column not in fields:
            raise UserError(
                f"{spec.origin}, subset {name!r}: column {subset.column!r} is not a field of the {where} examples "
                f"(fields: {', '.join(fields)}){did_you_mean(subset.column, fields)}"
            )
        wanted = {str(value) for value in subset.values}
        indices = [i for i, example in enumerate(examples) if str(example.get(subset.column)) in wanted]
    else:
        ids = subset.ids if subset.ids is not None else read_ids_file(spec, name, subset.ids_file, data_dir)
        position = {example_id(example, i): i for i, example in enumerate(examples)}
        unknown = [item for item in ids if item not in position]
        if unknown:
            raise UserError(f"{spec.origin}, subset {name!r}: {len(unknown)} id(s) not in the {where} examples (first: {unknown[0]!r})")
        indices = sorted({position[item] for item in ids})
    if not indices:
        raise EmptySubset(f"{spec.origin}, subset {name!r}: selects no example of {where}")
    return indices


def subset_indices(
    spec: TaskSpec, name: str, split: str, language: str, examples: Sequence[Example], load: ExampleLoader, data_dir: Path | None
) -> list[int]:
    """The indices of subset `name` among `examples` (those of `split` in `language`).

    Selected on the subset's language (loaded with `load` unless it is `language`) and carried
    by index; `language: each` selects on `examples` themselves.

    Raises:
        UserError: the split's item counts differ between the two languages (naming the task,
            split and both counts), or the selection itself fails (see `select`).
    """
    subset = spec.subsets[name]
    source = subset.language or spec.train_language
    if source == EACH_LANGUAGE or source == language:
        return select(spec, name, subset, examples, f"{split}-{language}", data_dir)
    reference = load(split, source)
    if len(reference) != len(examples):
        raise UserError(
            f"task {spec.name!r}, split {split!r}: subset {name!r} is selected on {source} ({len(reference)} items) and carried "
            f"by item index, but {language} has {len(examples)} items (the languages of a split must be parallel)"
        )
    return select(spec, name, subset, reference, f"{split}-{source}", data_dir)


def with_failure_rate(spec: TaskSpec, metrics: dict[str, float]) -> dict[str, float]:
    """`metrics` plus failure_rate = 100 - exact_match when the spec asks for it (test suites)."""
    if spec.failure_rate and EXACT_MATCH in metrics:
        return {**metrics, FAILURE_RATE: 100.0 - metrics[EXACT_MATCH]}
    return metrics


def subset_rows(
    spec: TaskSpec, split: str, language: str, examples: Sequence[Example], predictions: Sequence, *,
    load: ExampleLoader, data_dir: Path | None, run_id: str, phase: str,
) -> list[ResultRow]:
    """Rows for every subset the spec declares, under split `subset_split(split, name)`, scored
    by the format's own scorer on the subset's items (the same metrics as the split's rows)."""
    rows, loaded = [], {}

    def load_once(split_: str, language_: str) -> Sequence[Example]:  # several subsets, one reference language
        if (split_, language_) not in loaded:
            loaded[split_, language_] = load(split_, language_)
        return loaded[split_, language_]

    for name, subset in spec.subsets.items():
        if subset.splits is not None and split not in subset.splits:
            continue
        try:
            indices = subset_indices(spec, name, split, language, examples, load_once, data_dir)
        except EmptySubset:
            if subset.language == EACH_LANGUAGE:
                continue  # each language has its own items: this one has none of the subset's (no rows)
            raise
        metrics = with_failure_rate(spec, score_records(spec, examples, predictions, indices))
        rows.extend(ResultRow(run_id, phase, spec.name, language, subset_split(split, name), metric, value) for metric, value in metrics.items())
    return rows


def check_subsets(spec: TaskSpec, splits: Sequence[str], languages: Sequence[str], load: ExampleLoader, data_dir: Path | None) -> None:
    """Select every subset of `splits` in every language, as the sweep will, so that a mistake
    (an unknown column or id, an empty selection, non-parallel languages) stops a run before
    training instead of failing its evaluations. Unlabelled splits are never scored: skipped.

    Raises:
        UserError: the first problem, as `subset_indices` words it.
    """
    for split in splits:
        names = [name for name, subset in spec.subsets.items() if subset.splits is None or split in subset.splits]
        for language in languages if names else ():
            examples = load(split, language)
            if not all(is_labelled(example) for example in examples):
                continue
            for name in names:
                try:
                    subset_indices(spec, name, split, language, examples, load, data_dir)
                except EmptySubset:
                    if spec.subsets[name].language != EACH_LANGUAGE:
                        raise
