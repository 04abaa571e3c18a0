"""Zero-shot evaluation: xstilts' sweep against the way users evaluate XNLI languages today.

Same tiny XLM-R-like classifier (random weights, seeded, saved once), same XNLI-shaped pairs in
XTREME's `test-{language}.tsv` files, 15 languages, same batch size:

- `xstilts`: one process, the model loaded once, `run_zero_shot_sweep` over every language
  (dynamic padding, length-sorted batches, each batch decoded where it ran);
- `per-language`: one process per language, as XTREME's / HF's scripts run: each loads the
  model, tokenises its file padded to max length 128, predicts in order and writes predictions.

Both are timed from process start to exit (what a user waits for), and must agree on every
language's accuracy. A second case, CCG-like tagging (1,360 tags, windows of up to 256 subwords),
compares peak memory of the old path (every batch's full [time, tags] logits kept, decoded at
the end) with xstilts' per-batch decode.

    python benchmarks/sweep.py           # the full table (3-6 minutes on 2 shared CPU cores)
    python benchmarks/sweep.py --small   # a quick look

On a GPU both sides run in bf16 and the tables add tokens/s (non-padding tokens) and peak GPU memory.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

MAX_LENGTH = 128
TAGGING_LENGTH = 256
CCG_TAGS = 1360
LABELS = ("entailment", "neutral", "contradiction")


def made_up_words(rng: random.Random, n: int) -> list[str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    return sorted({"".join(rng.choices(letters, k=rng.randint(2, 8))) for _ in range(n)})


def sentence(rng: random.Random, vocabulary: list[str], mean_words: float, most: int) -> str:
    """Words with a long-tailed (log-normal) count around `mean_words`, as XNLI's premises."""
    words = max(2, min(most, int(rng.lognormvariate(math.log(mean_words), 0.6))))
    return " ".join(rng.choices(vocabulary, k=words))


def prepare(workdir: Path, args) -> None:
    """XNLI-shaped test files for 15 languages (each its own made-up vocabulary), and the model."""
    from transformers import XLMRobertaConfig, XLMRobertaForSequenceClassification

    from xstilts.models.tiny import train_wordpiece_tokenizer
    from xstilts.tasks.registry import load_registry

    languages = load_registry().get("xnli").languages
    corpus = []
    (workdir / "data").mkdir()
    for index, language in enumerate(languages):
        rng = random.Random(index)
        vocabulary = made_up_words(rng, 400)
        corpus += [" ".join(vocabulary[i : i + 50]) for i in range(0, len(vocabulary), 50)] * 3
        with open(workdir / "data" / f"test-{language}.tsv", "w", encoding="utf-8") as handle:
            for _ in range(args.pairs):
                premise, hypothesis = sentence(rng, vocabulary, 20, 110), sentence(rng, vocabulary, 9, 40)
                handle.write(f"{premise}.\t{hypothesis}.\t{rng.choice(LABELS)}\n")
    tokenizer = train_wordpiece_tokenizer(corpus, vocab_size=8000)
    config = XLMRobertaConfig(
        vocab_size=len(tokenizer), hidden_size=args.hidden, num_hidden_layers=args.layers, num_attention_heads=4,
        intermediate_size=args.hidden * 4, max_position_embeddings=MAX_LENGTH + 2, type_vocab_size=2,
        pad_token_id=tokenizer.pad_token_id, num_labels=len(LABELS), id2label=dict(enumerate(LABELS)),
    )
    torch.manual_seed(0)
    XLMRobertaForSequenceClassification(config).save_pretrained(workdir / "model")
    tokenizer.save_pretrained(workdir / "model")


def load_classifier(workdir: Path, device: torch.device):
    from transformers import AutoTokenizer, XLMRobertaForSequenceClassification

    model = XLMRobertaForSequenceClassification.from_pretrained(workdir / "model").to(device).eval()
    return AutoTokenizer.from_pretrained(workdir / "model"), model


def run_xstilts(workdir: Path, args, device: torch.device) -> dict:
    """`run_zero_shot_sweep` over every language, with the saved classifier's weights in xstilts' head."""
    from xstilts.config.schema import Precision
    from xstilts.evaluation.sweep import run_zero_shot_sweep
    from xstilts.formats.base import get_format
    from xstilts.models.multitask import MultiTaskModel
    from xstilts.tasks.registry import load_registry

    spec = load_registry().get("xnli")
    fmt = get_format(spec.format)
    tokenizer, classifier = load_classifier(workdir, device)
    head = fmt.build_head(classifier.config.hidden_size, spec, 0.1)
    head.load_state_dict(classifier.classifier.state_dict())  # the same dense + tanh + out_proj
    model = MultiTaskModel(classifier.roberta, {spec.head_name: head}).to(device)
    rows = run_zero_shot_sweep(
        model, tokenizer, spec, languages=list(spec.languages), splits=["test"], data_dir=workdir / "data",
        max_length=MAX_LENGTH, batch_size=args.batch_size, device=device,
        precision=Precision.BF16 if device.type == "cuda" else Precision.FP32,
        run_id="bench", phase="zero-shot", predictions_dir=workdir / "xstilts-predictions",
    )
    return {"accuracy": {row.language: row.value for row in rows if row.metric == "accuracy"}}


@torch.inference_mode()
def run_one_language(workdir: Path, args, device: torch.device) -> dict:
    """XTREME's run_classify.py evaluation of one language: pad to 128, predict in order."""
    tokenizer, model = load_classifier(workdir, device)
    with open(workdir / "data" / f"test-{args.language}.tsv", encoding="utf-8") as handle:
        rows = list(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    encoded = tokenizer([r[0] for r in rows], [r[1] for r in rows], truncation=True, max_length=MAX_LENGTH,
                        padding="max_length", return_tensors="pt")
    predictions = []
    for start in range(0, len(rows), args.batch_size):
        batch = {key: value[start : start + args.batch_size].to(device) for key, value in encoded.items()}
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            predictions += model(**batch).logits.argmax(-1).tolist()
    labels = [LABELS[p] for p in predictions]
    (workdir / "baseline-predictions").mkdir(exist_ok=True)
    (workdir / "baseline-predictions" / f"test-{args.language}.tsv").write_text("\n".join(labels) + "\n", encoding="utf-8")
    accuracy = 100.0 * sum(p == r[2] for p, r in zip(labels, rows)) / len(rows)
    return {"accuracy": {args.language: accuracy}, "tokens": int(encoded["attention_mask"].sum())}


def tagging_case(args, device: torch.device):
    """A CCG-like split (1,360 tags, windows of up to 256 subwords) and a seeded tiny tagger."""
    from transformers import XLMRobertaConfig, XLMRobertaModel

    from xstilts.formats.base import get_format
    from xstilts.models.multitask import MultiTaskModel
    from xstilts.models.tiny import train_wordpiece_tokenizer
    from xstilts.tasks.registry import load_registry

    rng = random.Random(0)
    vocabulary = made_up_words(rng, 2000)
    tags = [f"T{i}" for i in range(CCG_TAGS)]
    spec = load_registry().get("ccg").model_copy(update={"labels": tags, "labels_file": None})
    examples = []
    for index in range(args.sentences):
        words = sentence(rng, vocabulary, 40, 200).split()
        examples.append({"id": str(index), "tokens": words, "labels": rng.choices(tags, k=len(words))})
    tokenizer = train_wordpiece_tokenizer([" ".join(vocabulary[i : i + 50]) for i in range(0, 2000, 50)] * 3, vocab_size=4000)
    fmt = get_format(spec.format)
    features = fmt.featurize(examples, tokenizer, spec, TAGGING_LENGTH)
    config = XLMRobertaConfig(
        vocab_size=len(tokenizer), hidden_size=args.hidden, num_hidden_layers=args.layers, num_attention_heads=4,
        intermediate_size=args.hidden * 4, max_position_embeddings=TAGGING_LENGTH + 2, type_vocab_size=2,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    head = fmt.build_head(args.hidden, spec, 0.1)
    model = MultiTaskModel(XLMRobertaModel(config, add_pooling_layer=False), {spec.head_name: head}).to(device)
    return spec, fmt, examples, features, tokenizer, model


def run_tagging(args, device: torch.device, full_logits: bool) -> dict:
    """Predict the CCG-like split keeping every batch's full logits (the old path), or with
    xstilts' per-batch decode; report the outputs kept across batches."""
    import numpy as np

    from xstilts.config.schema import Precision
    from xstilts.evaluation.predict import head_outputs, pad_time_axis
    from xstilts.formats.batching import autocast, collate

    spec, fmt, examples, features, tokenizer, model = tagging_case(args, device)
    precision = Precision.BF16 if device.type == "cuda" else Precision.FP32
    start = time.perf_counter()  # prediction only: both sides build the same split and model first
    if full_logits:
        with torch.inference_mode():
            model.eval()
            chunks = []
            for first in range(0, len(features), args.batch_size):
                with autocast(device, precision):
                    output = model(spec.head_name, collate(features[first : first + args.batch_size], tokenizer, device))
                chunks.append(output.float().cpu().numpy())
            kept = np.concatenate(pad_time_axis(chunks), axis=0)
        predictions = fmt.decode(kept.argmax(axis=-1), features, examples, spec)
    else:
        kept = head_outputs(model, spec.head_name, features, reduce=fmt.reduce, tokenizer=tokenizer, device=device,
                            precision=precision, batch_size=args.batch_size)
        predictions = fmt.decode(kept, features, examples, spec)
    seconds = time.perf_counter() - start
    return {"decode_seconds": seconds, "kept_mb": kept.nbytes / 2**20, "windows": len(features),
            "tokens": sum(len(f["input_ids"]) for f in features),
            "predictions": hashlib.sha256(json.dumps(predictions).encode()).hexdigest()}


def run_child(args) -> None:
    """One side in this process; prints its figures as JSON (the parent reads the last line)."""
    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() and not args.cpu else "cpu")
    start = time.perf_counter()
    if args.role == "xstilts":
        figures = run_xstilts(args.workdir, args, device)
    elif args.role == "per-language":
        figures = run_one_language(args.workdir, args, device)
    else:
        figures = run_tagging(args, device, full_logits=args.role == "tagging-full-logits")
    figures.update(inner_seconds=time.perf_counter() - start,
                   peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, device=device.type)
    if device.type == "cuda":
        figures["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    print(json.dumps(figures))


def child(args, role: str, *extra: str) -> dict:
    """Run one role in a fresh process; its figures plus the wall time from launch to exit."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    command = [sys.executable, __file__, "--role", role, "--workdir", str(args.workdir), *extra, *args.passed]
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{role} {' '.join(extra)} failed:\n{done.stderr[-3000:]}")
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "seconds": time.perf_counter() - start}


def print_sides(title: str, columns: dict, sides: dict[str, dict], seconds: str) -> None:
    """One row per side: seconds, the named columns, and tokens/s and peak GPU memory on a GPU."""
    gpu = all("peak_gpu_mb" in r for r in sides.values())
    extra = {"tokens/s": lambda r: r["tokens"] / r[seconds], "GPU MB": lambda r: r["peak_gpu_mb"]} if gpu else {}
    columns = {**columns, **extra}
    print(f"{title:<34}{'seconds':>9}" + "".join(f"{name:>13}" for name in columns))
    for name, r in sides.items():
        print(f"{name:<34}{r[seconds]:>9.1f}" + "".join(f"{column(r):>13.1f}" for column in columns.values()))


def compare_sweeps(args, languages: list[str]) -> None:
    ours = child(args, "xstilts")
    theirs = [child(args, "per-language", "--language", language) for language in languages]
    baseline = {
        "seconds": sum(r["seconds"] for r in theirs), "peak_rss_mb": max(r["peak_rss_mb"] for r in theirs),
        # Non-padding tokens: the same for both sides (the sweep pads each batch to its longest pair).
        "tokens": sum(r["tokens"] for r in theirs), "accuracy": {k: v for r in theirs for k, v in r["accuracy"].items()},
    }
    if "peak_gpu_mb" in ours:
        baseline["peak_gpu_mb"] = max(r["peak_gpu_mb"] for r in theirs)
    ours["tokens"] = baseline["tokens"]
    examples = args.pairs * len(languages)
    print(f"\nZero-shot sweep: {len(languages)} languages x {args.pairs} XNLI-shaped pairs, batch {args.batch_size}, "
          f"hidden {args.hidden} x {args.layers} layers, {args.threads} threads, device {ours['device']}")
    print_sides("side", {"examples/s": lambda r: examples / r["seconds"], "peak RSS MB": lambda r: r["peak_rss_mb"]},
                {"xstilts run_zero_shot_sweep": ours, "per-language processes, pad 128": baseline}, "seconds")
    ratio = baseline["seconds"] / ours["seconds"]
    print(f"speed-up {ratio:.2f}x (target >= 3x: {'met' if ratio >= 3 else 'NOT met'}); "
          f"per-language interpreter start + imports: {sum(r['seconds'] - r['inner_seconds'] for r in theirs):.1f} s")
    worst = max(abs(ours["accuracy"][k] - baseline["accuracy"][k]) for k in languages)
    print(f"accuracy per language agrees: {'yes' if worst < 1e-9 else f'NO (largest difference {worst:.3f} points)'}")


def compare_tagging(args) -> None:
    full, ours = child(args, "tagging-full-logits"), child(args, "tagging-per-batch")
    print(f"\nCCG-like tagging: {args.sentences} sentences, {ours['windows']} windows of up to {TAGGING_LENGTH} subwords, "
          f"{CCG_TAGS} tags, batch {args.batch_size}")
    print_sides("path", {"kept MB": lambda r: r["kept_mb"], "peak RSS MB": lambda r: r["peak_rss_mb"]},
                {"full logits, decoded at the end": full, "xstilts per-batch decode": ours}, "decode_seconds")
    print(f"same predictions: {'yes' if full['predictions'] == ours['predictions'] else 'NO'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", action="store_true", help="a quick look: 300 pairs per language, 150 tagging sentences")
    parser.add_argument("--pairs", type=int, default=1000, help="XNLI-shaped pairs per language (XNLI's test sets: 5,010)")
    parser.add_argument("--sentences", type=int, default=400, help="sentences of the CCG-like tagging case")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=2)
    # One: a tiny model's forward gains little from a second thread, and on a shared CPU a
    # thread that waits for a busy core makes every batch several times slower.
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--cpu", action="store_true", help="stay on the CPU even where a GPU is present")
    parser.add_argument("--role", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--language", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.small:
        args.pairs, args.sentences = 300, 150
    if args.role:
        return run_child(args)
    # What every child must share with the parent (sizes, threads, device).
    args.passed = [f"--pairs={args.pairs}", f"--sentences={args.sentences}", f"--batch-size={args.batch_size}",
                   f"--hidden={args.hidden}", f"--layers={args.layers}", f"--threads={args.threads}"] + (["--cpu"] if args.cpu else [])
    from xstilts.tasks.registry import load_registry

    with tempfile.TemporaryDirectory() as workdir:
        args.workdir = Path(workdir)
        prepare(args.workdir, args)
        compare_sweeps(args, list(load_registry().get("xnli").languages))
        compare_tagging(args)


if __name__ == "__main__":
    main()
