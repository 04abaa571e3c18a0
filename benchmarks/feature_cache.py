"""Benchmark of the feature cache: featurise a realistic amount of data cold, then warm.

    .venv/bin/python benchmarks/feature_cache.py [--pairs 20000] [--workdir DIR]

Writes synthetic data (src/xstilts/synthetic: XNLI-shaped pairs, POS tagging, SQuAD-style QA)
and a WordPiece tokenizer trained on it, then featurises every split twice through a fresh
cache, each time in its own process as two experiments would: cold (featurise and store) and
warm (load). Prints seconds, the warm/cold ratio (target <= 5%) and each process's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from xstilts.data.feature_cache import FeatureCache, featurize_cached
from xstilts.data.loading import load_examples
from xstilts.formats.base import get_format
from xstilts.models.tiny import train_wordpiece_tokenizer
from xstilts.synthetic.generate import generate_benchmark
from xstilts.tasks.registry import load_registry

# (task, folder of the synthetic benchmark, max_length)
TASKS = [("synth-mnli", "nli", 128), ("synth-pos", "pos", 128), ("synth-squad", "qa", 384)]


def prepare(workdir: Path, pairs: int) -> None:
    """The data and the tokenizer (not timed)."""
    generate_benchmark(
        workdir / "data", seed=0,
        sizes={"nli": {"train": pairs}, "pos": {"train": 3000}, "qa": {"train": 1000}, "mlm": {"sentences": 1000}},
    )
    registry = load_registry()
    texts = []
    for task, folder, _ in TASKS:
        for example in load_examples(registry.get(task), "train", "en", workdir / "data" / folder):
            texts.extend(str(value) for value in example.values() if isinstance(value, str))
            texts.extend(" ".join(value) for value in example.values() if isinstance(value, list) and value and isinstance(value[0], str))
    train_wordpiece_tokenizer(texts, vocab_size=8000).save_pretrained(workdir / "tokenizer")


def featurize_all(workdir: Path) -> dict:
    """Featurise every task's English train split through the cache; seconds and peak RSS."""
    from transformers import AutoTokenizer

    registry = load_registry()
    tokenizer = AutoTokenizer.from_pretrained(workdir / "tokenizer")
    loaded = {task: load_examples(registry.get(task), "train", "en", workdir / "data" / folder) for task, folder, _ in TASKS}
    cache = FeatureCache(workdir / "cache" / "features")
    seconds, counts = {}, {}
    for task, _, max_length in TASKS:
        spec = registry.get(task)
        start = time.perf_counter()
        features = featurize_cached(get_format(spec.format), loaded[task], tokenizer, spec, max_length, cache=cache)
        seconds[task] = time.perf_counter() - start
        counts[task] = (len(loaded[task]), len(features))
    return {"seconds": seconds, "counts": counts, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=20000, help="XNLI-shaped training pairs")
    parser.add_argument("--workdir", type=Path, help="where data, tokenizer and cache go (default: a temporary folder)")
    parser.add_argument("--phase", choices=["cold", "warm"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:  # one experiment, in its own process
        print(json.dumps(featurize_all(args.workdir)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.workdir or Path(tmp)
        prepare(workdir, args.pairs)
        runs = {}
        for phase in ("cold", "warm"):
            out = subprocess.run(
                [sys.executable, __file__, "--phase", phase, "--workdir", str(workdir)], check=True, capture_output=True, text=True
            ).stdout
            runs[phase] = json.loads(out.strip().splitlines()[-1])
        cold, warm = runs["cold"], runs["warm"]
        print(f"{'task':<14}{'examples':>9}{'features':>10}{'cold s':>9}{'warm s':>9}{'warm/cold':>11}")
        for task, _, _ in TASKS:
            examples, features = cold["counts"][task]
            c, w = cold["seconds"][task], warm["seconds"][task]
            print(f"{task:<14}{examples:>9}{features:>10}{c:>9.2f}{w:>9.3f}{w / c:>10.1%}")
        c, w = sum(cold["seconds"].values()), sum(warm["seconds"].values())
        print(f"{'total':<14}{'':>9}{'':>10}{c:>9.2f}{w:>9.3f}{w / c:>10.1%}")
        print(f"peak RSS: cold process {cold['peak_rss_mib']:.0f} MiB, warm process {warm['peak_rss_mib']:.0f} MiB")


if __name__ == "__main__":
    main()
