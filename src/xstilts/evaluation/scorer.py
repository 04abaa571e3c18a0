"""Score a leaderboard predictions folder against a labels folder, like xtreme's evaluate.py.

Both folders use the leaderboard layout `<task>/test-<lang>.<ext>`: `json` for span QA
(xquad, mlqa, tydiqa) and ranking tasks (mewslix, lareqa), `jsonl` for multiple choice
(xcopa), `tsv` otherwise. A task is scored when its folder exists on both sides, over every
language the task registry lists for the benchmark; a missing file is an error.

File contents, predictions / gold:
- classification, tatoeba: one label (tatoeba: English line index) per line;
- tagging: one label per line, a blank line between sentences (a `token<TAB>label` line
  counts as its last column);
- span QA: `{question id: answer text}` / SQuAD-format json (`data[].paragraphs[].qas[]`);
- xcopa: one json object with a `label` per line, on both sides;
- bucc2018: `src_id<TAB>tgt_id` per line, on both sides;
- mewslix, lareqa: `{query id: [ranked candidate ids]}` / `{query id: [relevant ids]}`.

The result has the official structure: group scores (and `all_task` once every task of the
benchmark is present) next to one entry per task holding `{metric: {lang: value}}`,
`avg_<metric>` and `avg_metric`, all on the 0..100 scale and unrounded.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from xstilts.config.loading import shorten
from xstilts.errors import UserError, did_you_mean
from xstilts import metrics
from xstilts.tasks.registry import TaskRegistry, load_registry
from xstilts.tasks.spec import Format, Metric, TaskSpec

logger = logging.getLogger(__name__)

# Task groups of the official scorer. XTREME-R lists xcopa twice and leaves lareqa out of
# every group, exactly as google-research/xtreme evaluate.py does.
BENCHMARK_GROUPS: dict[str, dict[str, list[str]]] = {
    "xtreme": {
        "classification": ["pawsx", "xnli"],
        "tagging": ["udpos", "panx"],
        "qa": ["xquad", "mlqa", "tydiqa"],
        "retrieval": ["bucc2018", "tatoeba"],
    },
    "xtreme-r": {
        "classification": ["xnli", "xcopa"],
        "tagging": ["udpos", "panx"],
        "qa": ["xquad", "mlqa", "tydiqa"],
        "retrieval": ["tatoeba", "mewslix"],
        "multi_choice": ["xcopa"],
    },
}

# Gold values XTREME's preprocessing writes for removed tagging labels (panx "O", udpos "X").
_TAGGING_PLACEHOLDERS = metrics.PLACEHOLDER_LABELS | {"o", "x"}
_RANKING_METRIC = "map@20"


def score_predictions(
    predictions_dir: Path, labels_dir: Path, benchmark: str, registry: TaskRegistry | None = None
) -> dict[str, Any]:
    """Score every task of `benchmark` whose folder exists in both directories.

    Args:
        predictions_dir: folder with `<task>/test-<lang>.<ext>` prediction files.
        labels_dir: folder with the gold files in the same layout.
        benchmark: "xtreme" or "xtreme-r"; selects tasks, languages and groups.
        registry: where task languages come from; the built-in registry by default.

    Returns:
        A JSON-serialisable dict in the structure of the official evaluate.py output.

    Raises:
        UserError: unknown benchmark, missing folder or file, malformed or unlabelled data.

    Example:
        >>> score_predictions(Path("preds"), Path("gold"), "xtreme")  # doctest: +SKIP
        {'classification': 83.4, 'qa': 70.2, ...,
         'xnli': {'accuracy': {'ar': 77.2, ..., 'zh': 79.1}, 'avg_accuracy': 79.6, 'avg_metric': 79.6},
         'xquad': {'exact_match': {...}, 'f1': {...}, 'avg_exact_match': 61.8, 'avg_f1': 76.6,
                   'avg_metric': 69.2}, ...}

    Tasks come in registry (alphabetical) order, not evaluate.py's; the values are the same.
    """
    _benchmark_groups(benchmark)  # an unknown benchmark fails before any file is read
    for folder in (predictions_dir, labels_dir):
        if not Path(folder).is_dir():
            raise UserError(f"{folder}: folder not found")
    registry = registry if registry is not None else load_registry()
    specs = [spec for spec in registry if spec.languages_for(benchmark)]
    available = _available_tasks(Path(predictions_dir), Path(labels_dir), specs)
    if not available:
        names = ", ".join(spec.name for spec in specs)
        raise UserError(
            f"{predictions_dir}: no task folder of {benchmark} found in both the predictions "
            f"and the labels folder (expected some of: {names})"
        )
    detailed = {
        spec.name: _score_task(spec, benchmark, Path(predictions_dir), Path(labels_dir))
        for spec in available
    }
    overall = benchmark_averages({name: task["avg_metric"] for name, task in detailed.items()}, benchmark, registry)
    return {**overall, **detailed}


def benchmark_averages(
    task_averages: Mapping[str, float], benchmark: str, registry: TaskRegistry | None = None
) -> dict[str, float]:
    """The official overall and group scores from per-task scores (each task's `avg_metric`).

    `all_task` (the mean over the benchmark's tasks) is there only once every task of the
    benchmark is; a group only when all its tasks are. Tasks outside the benchmark are ignored.

    Example:
        >>> benchmark_averages({"pawsx": 80.0, "xnli": 70.0}, "xtreme")
        {'classification': 75.0}
    """
    groups = _benchmark_groups(benchmark)
    registry = registry if registry is not None else load_registry()
    names = [spec.name for spec in registry if spec.languages_for(benchmark)]
    present = [name for name in names if name in task_averages]
    overall: dict[str, float] = {}
    if present and len(present) == len(names):
        overall["all_task"] = sum(task_averages[name] for name in present) / len(present)
    for group, tasks in groups.items():
        if all(task in task_averages for task in tasks):
            overall[group] = sum(task_averages[task] for task in tasks) / len(tasks)
    return overall


def _benchmark_groups(benchmark: str) -> dict[str, list[str]]:
    if benchmark not in BENCHMARK_GROUPS:
        raise UserError(f"unknown benchmark {benchmark!r}{did_you_mean(benchmark, BENCHMARK_GROUPS)}")
    return BENCHMARK_GROUPS[benchmark]


def _available_tasks(predictions_dir: Path, labels_dir: Path, specs: list[TaskSpec]) -> list[TaskSpec]:
    """Tasks with a folder on both sides; unexpected folders are reported, not fatal (as upstream)."""
    predicted = {p.name for p in predictions_dir.iterdir() if p.is_dir()}
    gold = {p.name for p in labels_dir.iterdir() if p.is_dir()}
    names = [spec.name for spec in specs]
    for name in sorted(predicted - set(names)):
        logger.warning("%s: not a task of this benchmark, ignored%s",
                       predictions_dir / name, did_you_mean(name, names))
    for name in sorted((predicted & set(names)) - gold):
        logger.warning("%s: no gold labels for task %s, not scored", labels_dir / name, name)
    return [spec for spec in specs if spec.name in predicted and spec.name in gold]


def file_extension(spec: TaskSpec) -> str:
    """The leaderboard file extension of a task (official `get_suffix`)."""
    if spec.format == Format.SPAN_QA or spec.metric == Metric.MAP_AT_20:
        return "json"
    if spec.format == Format.MULTIPLE_CHOICE:
        return "jsonl"
    return "tsv"


def _score_task(spec: TaskSpec, benchmark: str, predictions_dir: Path, labels_dir: Path) -> dict[str, Any]:
    ext = file_extension(spec)
    score: dict[str, Any] = {}
    for language in spec.languages_for(benchmark):
        prediction_file = predictions_dir / spec.name / f"test-{language}.{ext}"
        gold_file = labels_dir / spec.name / f"test-{language}.{ext}"
        for path in (prediction_file, gold_file):
            if not path.is_file():
                raise UserError(f"{path}: file not found (task {spec.name} of {benchmark} needs it)")
        result = _SCORERS[spec.metric](prediction_file, gold_file, spec, language)
        for metric_name, value in result.items():
            score.setdefault(metric_name, {})[language] = value
    for metric_name in list(score):
        values = score[metric_name]
        score[f"avg_{metric_name}"] = sum(values.values()) / len(values)
    score["avg_metric"] = _task_metric(score)
    return score


def _task_metric(score: dict[str, Any]) -> float:
    """The task's score from its language averages (`avg_<metric>`)."""
    return task_score({key.removeprefix("avg_"): value for key, value in score.items() if key.startswith("avg_")})


def task_score(metrics: Mapping[str, float]) -> float:
    """The one number per task the official scorer averages, from one evaluation's metrics
    (or their language averages): the mean of exact match and F1 for QA, else F1, accuracy or
    mAP@20, the first present.

    Raises:
        ValueError: none of these metrics is present.

    Example:
        >>> task_score({"exact_match": 60.0, "f1": 70.0})
        65.0
    """
    if "exact_match" in metrics:
        return (metrics["exact_match"] + metrics["f1"]) / 2
    for key in ("f1", "accuracy", _RANKING_METRIC):
        if key in metrics:
            return metrics[key]
    raise ValueError(f"no task score among the metrics {sorted(metrics)}")


# --- readers (mirroring evaluate.py's read_label / read_tag / read_squad / read_xcopa) ----------


def _decode(path: Path) -> str:
    """The file as text: UTF-8, where a byte order mark at the start is encoding, not content."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise UserError(f"{path}:{line}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def _read_text(path: Path) -> list[str]:
    # Universal newlines split lines exactly as evaluate.py's iteration over the file does;
    # str.splitlines would also split on separators such as U+2028 inside tokens.
    return [line.rstrip("\n") for line in io.StringIO(_decode(path), newline=None)]


def _read_lines(path: Path) -> list[str]:
    return [line.strip() for line in _read_text(path)]


def _read_tags(path: Path) -> list[list[str]]:
    """Sentences of labels; like the official reader, each blank line closes a sentence."""
    sentences: list[list[str]] = []
    sentence: list[str] = []
    for line in _read_text(path):
        line = line.strip()
        if line:
            sentence.append(line.split("\t")[-1].strip())
        else:
            sentences.append(sentence)
            sentence = []
    if sentence:
        sentences.append(sentence)
    return sentences


def _read_json(path: Path) -> Any:
    return _parse_json(_decode(path), path)


def _parse_json(text: str, path: Path, line: int | None = None) -> Any:
    """json.loads, where any failure is one UserError line naming the file and line (`line`:
    the line of a jsonl file that `text` is)."""
    where = f"{path}:{line}" if line is not None else str(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}:{line if line is not None else exc.lineno}: invalid JSON ({exc.msg})") from None
    except RecursionError:
        raise UserError(f"{where}: invalid JSON (nested too deeply)") from None
    except ValueError as exc:  # an integer past Python's digit limit
        raise UserError(f"{where}: invalid JSON ({' '.join(str(exc).split())})") from None


def _read_jsonl_labels(path: Path) -> list[Any]:
    labels = []
    for number, line in enumerate(_read_text(path), start=1):
        if not line.strip():
            continue
        record = _parse_json(line, path, line=number)
        if not isinstance(record, dict) or "label" not in record:
            raise UserError(f"{path}:{number}: expected an object with a 'label' key")
        labels.append(record["label"])
    return labels


def _read_squad_gold(path: Path) -> dict[str, list[str]]:
    """{question id: [answer texts]} from SQuAD-format json (with or without the 'data' wrapper)."""
    document = _read_json(path)
    articles = document.get("data") if isinstance(document, dict) else document
    if not isinstance(articles, list):
        raise UserError(f"{path}: expected SQuAD-format json with a 'data' list of articles")
    gold: dict[str, list[str]] = {}
    for a, article in enumerate(articles):
        for p, paragraph in enumerate(_squad_field(article, "paragraphs", list, path, f"data[{a}]")):
            for q, qa in enumerate(_squad_field(paragraph, "qas", list, path, f"data[{a}].paragraphs[{p}]")):
                where = f"data[{a}].paragraphs[{p}].qas[{q}]"
                question_id = _squad_field(qa, "id", str, path, where)
                if question_id in gold:
                    raise UserError(f"{path}: question id {question_id!r} appears twice")
                answers = _squad_field(qa, "answers", list, path, where)
                gold[question_id] = [
                    _squad_field(answer, "text", str, path, f"{where}.answers[{n}]") for n, answer in enumerate(answers)
                ]
    return gold


def _squad_field(record: Any, key: str, kind: type, path: Path, where: str) -> Any:
    """`record[key]`, which must be a `kind`; anything else is one line naming the json path."""
    if not isinstance(record, dict):
        raise UserError(f"{path}: not SQuAD-format json: {where} should be an object (got {shorten(record)})")
    if key not in record:
        raise UserError(f"{path}: not SQuAD-format json: {where} has no {key!r}")
    value = record[key]
    if not isinstance(value, kind):
        raise UserError(f"{path}: not SQuAD-format json: {where}.{key} should be a {kind.__name__} (got {shorten(value)})")
    return value


def _read_mapping(path: Path, value_type: type) -> dict[str, Any]:
    document = _read_json(path)
    if not isinstance(document, dict):
        raise UserError(f"{path}: expected a json object mapping ids to {value_type.__name__} values")
    for key, value in document.items():
        if not isinstance(value, value_type):
            raise UserError(f"{path}: value of {key!r} should be a {value_type.__name__}")
    return document


def _check_gold_labels(labels: list[str], spec: TaskSpec, path: Path) -> None:
    allowed = set(spec.labels)
    if not allowed:
        return
    for number, label in enumerate(labels, start=1):
        if label not in allowed:
            raise UserError(
                f"{path}: gold label {label!r} (item {number}) is not among the {spec.name} labels"
                f"{did_you_mean(label, allowed)}"
            )


def _same_length(predictions: list, gold: list, prediction_file: Path, gold_file: Path) -> None:
    if len(predictions) != len(gold):
        raise UserError(f"{prediction_file}: {len(predictions)} examples, but {gold_file} has {len(gold)}")


# --- one scorer per metric; each returns {metric name: value on 0..100} -------------------------


def _score_accuracy(prediction_file: Path, gold_file: Path, spec: TaskSpec, language: str) -> dict:
    read = _read_jsonl_labels if spec.format == Format.MULTIPLE_CHOICE else _read_lines
    predictions, gold = read(prediction_file), read(gold_file)
    metrics.check_labelled(gold, str(gold_file))
    _check_gold_labels([str(label) for label in gold], spec, gold_file)
    _same_length(predictions, gold, prediction_file, gold_file)
    return {"accuracy": metrics.accuracy(predictions, gold) * 100}


def _score_tagging(prediction_file: Path, gold_file: Path, spec: TaskSpec, language: str) -> dict:
    predictions, gold = _read_tags(prediction_file), _read_tags(gold_file)
    metrics.check_labelled(gold, str(gold_file), placeholders=_TAGGING_PLACEHOLDERS)
    _check_gold_labels([label for sentence in gold for label in sentence], spec, gold_file)
    _same_length(predictions, gold, prediction_file, gold_file)
    for number, (pred, true) in enumerate(zip(predictions, gold, strict=True), start=1):
        if len(pred) != len(true):
            raise UserError(
                f"{prediction_file}: sentence {number} has {len(pred)} labels, "
                f"but {len(true)} tokens in {gold_file}"
            )
    if spec.metric == Metric.TOKEN_ACCURACY:
        return {"accuracy": metrics.token_accuracy(predictions, gold) * 100}
    return {
        "f1": metrics.seqeval_f1(predictions, gold) * 100,
        "precision": metrics.seqeval_precision(predictions, gold) * 100,
        "recall": metrics.seqeval_recall(predictions, gold) * 100,
    }


def _score_qa(prediction_file: Path, gold_file: Path, spec: TaskSpec, language: str) -> dict:
    gold = _read_squad_gold(gold_file)
    metrics.check_labelled([text for answers in gold.values() for text in answers], str(gold_file))
    predictions = _read_mapping(prediction_file, str)
    try:
        if spec.metric == Metric.MLQA_EM_F1:
            return metrics.mlqa_em_f1(predictions, gold, language)
        return metrics.squad_em_f1(predictions, gold)
    except UserError as exc:
        raise UserError(f"{gold_file}: {exc}") from None


def _read_pairs(path: Path) -> set[tuple[str, str]]:
    pairs = set()
    for number, line in enumerate(_read_lines(path), start=1):
        if not line:
            continue
        fields = line.split("\t")
        if len(fields) != 2:
            raise UserError(f"{path}:{number}: expected 'source_id<TAB>target_id', got {len(fields)} fields")
        pairs.add((fields[0], fields[1]))
    return pairs


def _score_bucc(prediction_file: Path, gold_file: Path, spec: TaskSpec, language: str) -> dict:
    gold = _read_pairs(gold_file)
    metrics.check_labelled(sorted(gold), str(gold_file))
    return metrics.bucc_f1(_read_pairs(prediction_file), gold)


def _score_ranking(prediction_file: Path, gold_file: Path, spec: TaskSpec, language: str) -> dict:
    gold = _read_mapping(gold_file, list)
    metrics.check_labelled([item for items in gold.values() for item in items], str(gold_file))
    predictions = _read_mapping(prediction_file, list)
    missing = [key for key in gold if key not in predictions]
    if missing:
        # Mewsli-X's official evaluation gives partial credit and only reports the count.
        logger.warning("%s: %d of %d queries have no prediction and score 0",
                       prediction_file, len(missing), len(gold))
    relevant = [{str(item).strip() for item in items} for items in gold.values()]
    ranked = [[str(item) for item in predictions.get(key, [])] for key in gold]
    try:
        return {_RANKING_METRIC: metrics.map_at_k(ranked, relevant, k=20) * 100}
    except UserError as exc:
        raise UserError(f"{gold_file}: {exc}") from None


_SCORERS: dict[Metric, Callable[[Path, Path, TaskSpec, str], dict]] = {
    Metric.ACCURACY: _score_accuracy,
    Metric.SEQEVAL_F1: _score_tagging,
    Metric.TOKEN_ACCURACY: _score_tagging,
    Metric.SQUAD_EM_F1: _score_qa,
    Metric.MLQA_EM_F1: _score_qa,
    Metric.BUCC_F1: _score_bucc,
    Metric.MAP_AT_20: _score_ranking,
}
