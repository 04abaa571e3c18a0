"""Wall time of the shipped `xstilts quickstart`, from nothing (a fresh temporary store), offline.

    python benchmarks/quickstart.py                      # the default layout (one arm run per core)
    python benchmarks/quickstart.py --compare            # --workers 1 (the old layout), then the default
    python benchmarks/quickstart.py --workers 2 -- pretrain.steps=500   # overrides after --

Each layout runs in its own fresh folder (data, tiny models and store are rebuilt: nothing is
reused between them). The stage times come from the quickstart's own log lines: "prepared the
miniature in N s" (data, tokenizer, MLM pretraining) and "arm A: target T done in N s" per run;
arm runs overlap when several run at once, so their sum can exceed the arms' wall time.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PREPARED = re.compile(r"prepared the miniature in (\d+) s")
ARM_DONE = re.compile(r"arm (\S+): target (\S+) done in (\d+) s")


def run_quickstart(workers: int | None, overrides: list[str]) -> dict:
    """One quickstart in a fresh folder: wall time, and the stage times its log gives."""
    with tempfile.TemporaryDirectory(prefix="xstilts-quickstart-") as folder:
        command = [sys.executable, "-m", "xstilts.cli", "quickstart", *overrides, "--store", str(Path(folder) / "store")]
        command += ["--workers", str(workers)] if workers else []
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "COLUMNS": "200"}
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, env=env)
        wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"quickstart failed ({' '.join(command)}):\n{done.stderr[-3000:]}")
    prepared = PREPARED.search(done.stderr)
    arms = [(arm, target, int(seconds)) for arm, target, seconds in ARM_DONE.findall(done.stderr)]
    return {"workers": workers or "default", "wall": wall, "prepare": prepared and int(prepared.group(1)),
            "arms": arms, "table": done.stdout}


def print_result(result: dict) -> None:
    prepare = result["prepare"]
    arm_sum = sum(seconds for *_, seconds in result["arms"])
    print(f"workers {result['workers']}: wall {result['wall'] / 60:.1f} min; prepare {prepare} s; "
          f"arms {len(result['arms'])} runs, {(result['wall'] - (prepare or 0)) / 60:.1f} min wall, {arm_sum / 60:.1f} min summed")
    for arm, target, seconds in result["arms"]:
        print(f"    {arm:<10}{target:<16}{seconds:>6} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, help="the quickstart's --workers (default: its own default)")
    parser.add_argument("--compare", action="store_true", help="run --workers 1 (the old layout) first, then this layout")
    parser.add_argument("overrides", nargs="*", help="quickstart config overrides, e.g. pretrain.steps=500")
    args = parser.parse_args()
    layouts = ([1] if args.compare else []) + [args.workers]
    results = []
    for workers in layouts:
        results.append(run_quickstart(workers, args.overrides))
        print_result(results[-1])
    if len(results) == 2:
        print(f"wall time: workers 1 {results[0]['wall'] / 60:.1f} min, {results[1]['workers']} "
              f"{results[1]['wall'] / 60:.1f} min ({results[0]['wall'] / results[1]['wall']:.2f}x faster)")
    print(results[-1]["table"])


if __name__ == "__main__":
    main()
