"""BUCC-style margin mining: xstilts' blocked `mine_candidates` against the full similarity matrix.

    python benchmarks/mining.py                 # dim 256: 100k x 100k blocked, 20k x 20k both ways
    python benchmarks/mining.py --dim 768       # the dimension of base-size encoders (about 3x slower)

Random L2-normalised float32 embeddings stand in for a model's. Each case runs in its own
process, so its peak resident memory (`ru_maxrss`) is its own; the table also shows the memory
of the process before mining (Python, torch and the two embedding matrices). The full-matrix
approach (`sources @ targets.T`, then top k along both axes) needs 4 n^2 bytes, 40 GB at 100k:
it runs only at the largest size that fits here, and its 100k memory is extrapolated. With CUDA
the same cases run on the GPU too (peak GPU memory by torch's allocator).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np
import torch

from xstilts.evaluation.bitext import MARGIN_NEIGHBOURS, mine_candidates

GIB = 2**30


def random_unit(rows: int, dim: int, seed: int) -> np.ndarray:
    """Random rows of unit length, made in float32 chunks (no float64 copy of the whole matrix)."""
    rng = np.random.default_rng(seed)
    out = np.empty((rows, dim), dtype=np.float32)
    for start in range(0, rows, 10_000):
        chunk = rng.standard_normal((min(10_000, rows - start), dim), dtype=np.float32)
        out[start : start + len(chunk)] = chunk / np.linalg.norm(chunk, axis=1, keepdims=True)
    return out


def full_matrix_mining(sources: np.ndarray, targets: np.ndarray, device: torch.device) -> int:
    """The naive way: the whole similarity matrix, then the k best along each axis and the margins."""
    sims = torch.from_numpy(sources).to(device) @ torch.from_numpy(targets).to(device).T
    fwd_sim, fwd_ind = sims.topk(MARGIN_NEIGHBOURS, dim=1)
    bwd_sim, bwd_ind = sims.topk(MARGIN_NEIGHBOURS, dim=0)
    fwd_mean, bwd_mean = fwd_sim.mean(dim=1), bwd_sim.mean(dim=0)
    fwd_scores = fwd_sim / ((fwd_mean[:, None] + bwd_mean[fwd_ind]) / 2)
    bwd_scores = bwd_sim / ((bwd_mean[None, :] + fwd_mean[bwd_ind]) / 2)
    return int((fwd_scores.max(dim=1).values > 0).sum() + (bwd_scores.max(dim=0).values > 0).sum())


def run_case(method: str, size: int, dim: int, device_name: str) -> dict:
    """One case in this process: its time and peak memory, as a JSON-ready dict."""
    device = torch.device(device_name)
    sources, targets = random_unit(size, dim, seed=0), random_unit(size, dim, seed=1)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    if method == "xstilts":
        found = len(mine_candidates(sources, targets, device))
    else:
        found = full_matrix_mining(sources, targets, device)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    gpu_peak = torch.cuda.max_memory_allocated() if device.type == "cuda" else None
    return {"method": method, "size": size, "dim": dim, "device": device_name, "seconds": seconds,
            "rss_before": before, "rss_peak": peak, "gpu_peak": gpu_peak, "found": found}


def run_in_subprocess(method: str, size: int, dim: int, device: str) -> dict:
    """A case in a fresh process, so that peaks of different cases do not mix."""
    command = [sys.executable, __file__, "--case", method, "--size", str(size), "--dim", str(dim), "--device", device]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def print_table(results: list[dict], full_size: int) -> None:
    print(f"{'method':<20}{'n x n':>16}{'dim':>6}{'device':>8}{'time s':>10}{'RSS before GB':>15}{'peak RSS GB':>13}{'peak GPU GB':>13}")
    for row in results:
        gpu = f"{row['gpu_peak'] / GIB:.2f}" if row["gpu_peak"] is not None else "-"
        print(f"{row['method']:<20}{row['size']:>8,} x {row['size']:<7,}{row['dim']:>4}{row['device']:>8}"
              f"{row['seconds']:>10.1f}{row['rss_before'] / GIB:>15.2f}{row['rss_peak'] / GIB:>13.2f}{gpu:>13}")
    # The full matrix alone is 4 n^2 bytes; the rest of its peak (process, inputs) scales like n.
    print(f"{'full-matrix':<20}{'100,000 x 100,000':>16}{'':>6}{'':>8}{'':>10}{'':>15}{4 * 100_000**2 / GIB:>12.1f}*")
    print(f"* extrapolated: the 100k x 100k float32 similarity matrix alone (4 n^2 bytes); not runnable on this machine")
    pairs = {(row["method"], row["device"]): row for row in results if row["size"] == full_size}
    for device in sorted({row["device"] for row in results}):
        blocked, full = pairs.get(("xstilts", device)), pairs.get(("full-matrix", device))
        if blocked and full:
            print(f"{full_size:,} x {full_size:,} on {device}: full matrix / xstilts = "
                  f"{full['seconds'] / blocked['seconds']:.2f}x time, "
                  f"{(full['rss_peak'] - full['rss_before']) / max(1, blocked['rss_peak'] - blocked['rss_before']):.1f}x "
                  f"memory above the inputs" + (f", {full['gpu_peak'] / blocked['gpu_peak']:.1f}x GPU memory" if full["gpu_peak"] else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dim", type=int, default=256, help="embedding dimension (768: base-size encoders)")
    parser.add_argument("--size", type=int, default=100_000, help="sentences per side for xstilts' mining")
    parser.add_argument("--full-size", type=int, default=20_000, help="sentences per side for the full-matrix comparison")
    parser.add_argument("--case", choices=["xstilts", "full-matrix"], help=argparse.SUPPRESS)
    parser.add_argument("--device", default="cpu", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case(args.case, args.size, args.dim, args.device)))
        return
    devices = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]
    cases = [(method, size) for size in (args.full_size, args.size) for method in ("xstilts", "full-matrix")
             if not (method == "full-matrix" and size != args.full_size)]
    results = []
    for device in devices:
        for method, size in cases:
            results.append(run_in_subprocess(method, size, args.dim, device))
            print(f"done: {method} {size:,} on {device} in {results[-1]['seconds']:.1f} s", file=sys.stderr)
    print_table(results, args.full_size)


if __name__ == "__main__":
    main()
