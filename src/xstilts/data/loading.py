"""Where a task's examples come from: local files (when a data dir is given) or the hub."""

from __future__ import annotations

from pathlib import Path

from xstilts.data.hub import load_hub_examples
from xstilts.data.io import Example, is_labelled, resolve_pattern
from xstilts.data.readers import get_reader
from xstilts.errors import UserError
from xstilts.tasks.spec import TaskSpec


def local_path(spec: TaskSpec, data_dir: Path, split: str, language: str) -> Path:
    """The file of one split and language (a glob pattern must match exactly one file).

    Options `file_language_<language>` and `file_split_<split>` spell a language or split the
    way the original file names do where that differs from ours (Tatoeba's `deu`, XCOPA's `val`).
    """
    file_language = spec.local.options.get(f"file_language_{language}", language)
    file_split = spec.local.options.get(f"file_split_{split}", split)
    return resolve_pattern(Path(data_dir) / spec.local.path.format(split=file_split, language=file_language))


def load_examples(
    spec: TaskSpec, split: str, language: str, data_dir: Path | None, *, allow_unlabelled: bool = False
) -> list[Example]:
    """All examples of one split of one language of a task, validated by its reader.

    Args:
        allow_unlabelled: accept a file without labels (a test file whose labels are withheld),
            whose examples are then only predicted on; by default such a file is an error, so
            nothing trains, selects or scores on it.

    Example:
        >>> load_examples(registry.get("xnli"), "test", "de", Path("data/xnli"))
    """
    if split not in spec.splits:
        raise UserError(f"task {spec.name!r} has no split {split!r} (splits: {spec.splits})")
    if language not in spec.languages:
        raise UserError(f"task {spec.name!r} has no language {language!r} (languages: {spec.languages})")
    if data_dir is None:
        source, examples = f"task {spec.name!r} {split}-{language} from the hub", load_hub_examples(spec, split, language)
    elif spec.local is None:
        raise UserError(f"task {spec.name!r} has no local reader; drop its data dir to use the hub")
    else:
        source = local_path(spec, data_dir, split, language)
        reader = get_reader(spec.local.reader, spec)
        # A file holding every language (MultiCheckList's templates) is told which one to read.
        examples = reader(source, spec, language=language) if getattr(reader, "reads_language", False) else reader(source, spec)
        if not examples:
            raise UserError(f"{source}: no examples")
    if not allow_unlabelled and not all(is_labelled(example) for example in examples):
        raise UserError(
            f"{source}: no labels (an unlabelled test file): it can be predicted on as an eval split "
            "and exported, not trained on, selected on or scored"
        )
    return examples
