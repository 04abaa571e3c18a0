"""Training throughput: xstilts' loop against the ways users train the same model today.

Same tiny XLM-R-like encoder (random weights, seeded), same XNLI-shaped pairs, same batch size,
one epoch, no evaluation, each side in a fresh process (so peak memory is its own):

- `xstilts`: `train_model` with the shipped defaults (length-grouped batches, collation in a
  background thread); `xstilts-ungrouped`: the same with `group_by_length: false`;
  `xstilts-compiled` (only when asked for with --sides): the defaults plus `compile: true`, a
  cold compilation included in its time (it pays off only when the steps outlast it);
- `hf-pad128`: HF Trainer with the XTREME baseline settings (every pair padded to 128 tokens);
- `hf-grouped`: HF Trainer with dynamic padding and `train_sampling_strategy="group_by_length"`;
- `bare-grouped`: a bare PyTorch loop (AdamW, linear schedule, clipping) over HF's length-grouped
  batches, padded per batch by DataCollatorWithPadding in a DataLoader.

    python benchmarks/training.py                 # the full table (about 3 minutes on 2 CPU cores)
    python benchmarks/training.py --repeats 3     # medians of 3 runs per side
    python benchmarks/training.py --data ../shared/data/real/xnli/de/test.txt  # real XNLI pairs
    python benchmarks/training.py --examples 512  # a quick look
    python benchmarks/training.py --examples 16384 --sides xstilts xstilts-compiled  # does torch.compile pay off here?

On a GPU every side runs in bf16 and the table adds tokens/s (non-padding tokens), model FLOPs
utilisation (6 x parameters x tokens / time / the GPU's dense bf16 peak) and peak GPU memory.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import resource
import subprocess
import sys
import tempfile
import time

import torch

SIDES = ("xstilts", "xstilts-ungrouped", "hf-pad128", "hf-grouped", "bare-grouped")
OPTIONAL_SIDES = ("xstilts-compiled",)
# Dense bf16 peak TFLOP/s by GPU name, for model FLOPs utilisation.
PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L4": 121.0, "A10": 125.0}
MAX_LENGTH = 128


def xnli_shaped_pairs(n: int, seed: int = 0) -> tuple[list[dict], list[str]]:
    """`n` premise/hypothesis pairs with XNLI's length profile (premises ~20 words, long-tailed;
    hypotheses ~10), over a vocabulary of 3,000 made-up words, and a corpus to train the tokenizer."""
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocabulary = sorted({"".join(rng.choices(letters, k=rng.randint(2, 8))) for _ in range(3000)})

    def sentence(mean_words: float) -> str:
        words = max(2, min(110, int(rng.lognormvariate(math.log(mean_words), 0.6))))
        return " ".join(rng.choices(vocabulary, k=words)) + "."

    pairs = [
        {"id": str(i), "text_a": sentence(22), "text_b": sentence(10), "label": rng.choice(["entailment", "neutral", "contradiction"])}
        for i in range(n)
    ]
    return pairs, [" ".join(vocabulary[i : i + 50]) for i in range(0, len(vocabulary), 50)] * 3


def xnli_pairs(path: str, n: int) -> tuple[list[dict], list[str]]:
    """The first `n` pairs of an XNLI-format file (premise, hypothesis, label; tab-separated), and
    its text as the tokenizer's corpus."""
    with open(path, encoding="utf-8") as handle:
        rows = [line.rstrip("\n").split("\t") for line in handle][:n]
    pairs = [{"id": str(i), "text_a": a, "text_b": b, "label": label} for i, (a, b, label) in enumerate(rows)]
    return pairs, [text for a, b, _ in rows for text in (a, b)]


def build(args):
    """Tokenizer, encoder config and examples: the same in every side's process."""
    from transformers import XLMRobertaConfig

    from xstilts.models.tiny import train_wordpiece_tokenizer

    pairs, corpus = xnli_pairs(args.data, args.examples) if args.data else xnli_shaped_pairs(args.examples)
    tokenizer = train_wordpiece_tokenizer(corpus, vocab_size=8000)
    config = XLMRobertaConfig(
        vocab_size=len(tokenizer), hidden_size=args.hidden, num_hidden_layers=args.layers, num_attention_heads=4,
        intermediate_size=args.hidden * 4, max_position_embeddings=MAX_LENGTH + 2, type_vocab_size=2,
        pad_token_id=tokenizer.pad_token_id, num_labels=3,
    )
    return tokenizer, config, pairs


def run_xstilts(args, tokenizer, config, pairs, device, grouped: bool, compiled: bool = False) -> tuple[int, float]:
    from transformers import XLMRobertaModel

    from xstilts.config.schema import MixtureConfig, Precision, TrainConfig
    from xstilts.formats.base import get_format
    from xstilts.models.multitask import MultiTaskModel
    from xstilts.tasks.registry import load_registry
    from xstilts.training.loop import TrainTask, train_model

    spec = load_registry().get("xnli")
    fmt = get_format(spec.format)
    features = fmt.featurize(pairs, tokenizer, spec, MAX_LENGTH)
    torch.manual_seed(0)
    model = MultiTaskModel(XLMRobertaModel(config, add_pooling_layer=False), {spec.head_name: fmt.build_head(config.hidden_size, spec, 0.1)})
    cfg = TrainConfig(batch_size=args.batch_size, epochs=1, learning_rate=2e-5, eval_every_epoch=False, group_by_length=grouped,
                      compile=compiled)
    precision = Precision.BF16 if device.type == "cuda" else Precision.FP32
    start = time.perf_counter()
    train_model(model, [TrainTask(spec, fmt, features)], cfg, tokenizer=tokenizer, device=device, precision=precision,
                mixture=MixtureConfig(), seed=0)
    synchronize(device)
    return sum(len(f["input_ids"]) for f in features), time.perf_counter() - start


def run_hf_trainer(args, tokenizer, config, pairs, device, grouped: bool) -> tuple[int, float]:
    from datasets import Dataset
    from transformers import DataCollatorWithPadding, Trainer, TrainingArguments, XLMRobertaForSequenceClassification

    labels = {"entailment": 0, "neutral": 1, "contradiction": 2}
    encoded = tokenizer([p["text_a"] for p in pairs], [p["text_b"] for p in pairs], truncation=True, max_length=MAX_LENGTH,
                        padding=False if grouped else "max_length")
    data = Dataset.from_dict({**encoded, "labels": [labels[p["label"]] for p in pairs]})
    torch.manual_seed(0)
    model = XLMRobertaForSequenceClassification(config)
    with tempfile.TemporaryDirectory() as out:
        training = TrainingArguments(
            output_dir=out, per_device_train_batch_size=args.batch_size, num_train_epochs=1, learning_rate=2e-5,
            warmup_steps=0.1, weight_decay=0.01, max_grad_norm=1.0, logging_strategy="no", save_strategy="no",
            eval_strategy="no", report_to="none", disable_tqdm=True, seed=0, bf16=device.type == "cuda",
            use_cpu=device.type == "cpu", train_sampling_strategy="group_by_length" if grouped else "random",
        )
        trainer = Trainer(model=model, args=training, train_dataset=data,
                          data_collator=DataCollatorWithPadding(tokenizer) if grouped else None)
        start = time.perf_counter()
        trainer.train()
        synchronize(device)
    return sum(sum(mask) for mask in encoded["attention_mask"]), time.perf_counter() - start


def run_bare_loop(args, tokenizer, config, pairs, device) -> tuple[int, float]:
    from transformers import DataCollatorWithPadding, XLMRobertaForSequenceClassification, get_linear_schedule_with_warmup
    from transformers.trainer_pt_utils import get_length_grouped_indices

    labels = {"entailment": 0, "neutral": 1, "contradiction": 2}
    encoded = tokenizer([p["text_a"] for p in pairs], [p["text_b"] for p in pairs], truncation=True, max_length=MAX_LENGTH)
    rows = [{**{key: encoded[key][i] for key in encoded.keys()}, "labels": labels[p["label"]]} for i, p in enumerate(pairs)]
    order = get_length_grouped_indices([len(row["input_ids"]) for row in rows], args.batch_size,
                                       generator=torch.Generator().manual_seed(0))
    batches = [order[i : i + args.batch_size] for i in range(0, len(order), args.batch_size)]
    loader = torch.utils.data.DataLoader(rows, batch_sampler=batches, collate_fn=DataCollatorWithPadding(tokenizer))
    torch.manual_seed(0)
    model = XLMRobertaForSequenceClassification(config).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-5, weight_decay=0.01, fused=device.type == "cuda" or None)
    scheduler = get_linear_schedule_with_warmup(optimizer, len(batches) // 10, len(batches))
    start = time.perf_counter()
    for batch in loader:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            loss = model(**{key: value.to(device) for key, value in batch.items()}).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
    synchronize(device)
    return sum(len(row["input_ids"]) for row in rows), time.perf_counter() - start


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def run_side(args) -> None:
    """Train one side and print its figures as JSON (the parent process reads them)."""
    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() and not args.cpu else "cpu")
    tokenizer, config, pairs = build(args)
    side = args.side
    if side == "xstilts-compiled":
        # A cold compilation every time: inductor's on-disk cache would make repeats cheaper than the first.
        with tempfile.TemporaryDirectory(prefix="xstilts-inductor-") as cache:
            os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache
            tokens, seconds = run_xstilts(args, tokenizer, config, pairs, device, grouped=True, compiled=True)
    elif side.startswith("xstilts"):
        tokens, seconds = run_xstilts(args, tokenizer, config, pairs, device, grouped=side == "xstilts")
    elif side.startswith("hf"):
        tokens, seconds = run_hf_trainer(args, tokenizer, config, pairs, device, grouped=side == "hf-grouped")
    else:
        tokens, seconds = run_bare_loop(args, tokenizer, config, pairs, device)
    figures = {"side": side, "seconds": seconds, "examples_per_s": len(pairs) / seconds, "tokens_per_s": tokens / seconds,
               "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "device": device.type}
    if device.type == "cuda":
        parameters = sum(p.numel() for p in build_parameters(config))
        peak = next((v for k, v in PEAK_TFLOPS.items() if k in torch.cuda.get_device_name()), None)
        figures["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
        figures["mfu"] = 6 * parameters * tokens / seconds / (peak * 1e12) if peak else None
    print(json.dumps(figures))


def build_parameters(config):
    from transformers import XLMRobertaModel

    return XLMRobertaModel(config, add_pooling_layer=False).parameters()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=4096)
    parser.add_argument("--data", help="an XNLI-format file to take the pairs from (e.g. XNLI's test.txt) instead of made-up ones")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--sides", nargs="+", default=list(SIDES), choices=SIDES + OPTIONAL_SIDES)
    parser.add_argument("--repeats", type=int, default=1, help="runs per side; the table shows each side's median")
    parser.add_argument("--cpu", action="store_true", help="stay on the CPU even where a GPU is present")
    parser.add_argument("--side", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        return run_side(args)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    runs: dict[str, list[dict]] = {side: [] for side in args.sides}
    for _ in range(args.repeats):  # the sides interleaved, so a slow spell of the machine hits them all
        for side in args.sides:
            command = [sys.executable, __file__, "--side", side, *sys.argv[1:]]
            done = subprocess.run(command, env=env, capture_output=True, text=True)
            if done.returncode != 0:
                sys.exit(f"{side} failed:\n{done.stderr[-3000:]}")
            runs[side].append(json.loads(done.stdout.strip().splitlines()[-1]))
    # Each side's median run by time.
    results = {side: sorted(found, key=lambda r: r["seconds"])[len(found) // 2] for side, found in runs.items()}
    print(f"{args.examples} {'pairs of ' + args.data if args.data else 'XNLI-shaped pairs'}, batch {args.batch_size}, hidden {args.hidden} x {args.layers} layers, "
          f"{args.threads} threads, median of {args.repeats}, device {next(iter(results.values()))['device']}")
    gpu = any("peak_gpu_mb" in r for r in results.values())
    header = f"{'side':<20}{'seconds':>9}{'examples/s':>12}{'tokens/s':>11}{'peak RSS MB':>13}" + (f"{'GPU MB':>9}{'MFU':>7}" if gpu else "")
    print(header)
    for side, r in results.items():
        line = f"{side:<20}{r['seconds']:>9.1f}{r['examples_per_s']:>12.0f}{r['tokens_per_s']:>11.0f}{r['peak_rss_mb']:>13.0f}"
        if gpu:
            line += f"{r['peak_gpu_mb']:>9.0f}{(r['mfu'] or float('nan')):>7.1%}"
        print(line)
    if "xstilts" in results:
        ours = results["xstilts"]["examples_per_s"]
        targets = {"hf-pad128": 3.5, "hf-grouped": 1.0, "bare-grouped": 0.95, "xstilts-ungrouped": None, "xstilts-compiled": None}
        for side, target in targets.items():
            if side in results:
                ratio = ours / results[side]["examples_per_s"]
                goal = f"(target >= {target}x: {'met' if ratio >= target else 'NOT met'})" if target else ""
                print(f"xstilts / {side:<18} {ratio:5.2f}x {goal}")


if __name__ == "__main__":
    main()
