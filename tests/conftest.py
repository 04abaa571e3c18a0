"""Shared test set-up: offline hub, quiet transformers, tiny models and learnable fixtures."""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
hf_logging.disable_progress_bar()

from fixtures_nli import write_fixture  # noqa: E402

# Property-based tests: the same cases on every machine and run (derandomized, no example
# database), no per-example deadline (CPU speed varies); XSTILTS_FUZZ_EXAMPLES raises the count.
settings.register_profile(
    "xstilts",
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=int(os.environ.get("XSTILTS_FUZZ_EXAMPLES", "100")),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.load_profile("xstilts")

SHARED_REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"


@pytest.fixture(autouse=True)
def wal_store(monkeypatch):
    """Every test starts with the default store journal (WAL): the Slurm and Ray-cluster
    executors set XSTILTS_STORE_JOURNAL in their own process, which must not leak into other tests."""
    monkeypatch.delenv("XSTILTS_STORE_JOURNAL", raising=False)


@pytest.fixture(scope="session")
def nli_fixture(tmp_path_factory) -> dict:
    return write_fixture(tmp_path_factory.mktemp("nli"))


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, nli_fixture) -> Path:
    from xstilts.models.tiny import build_tiny_model

    corpus = [line.replace("\t", " ") for line in nli_fixture["corpus"]]
    return build_tiny_model(
        tmp_path_factory.mktemp("models") / "tiny", corpus, vocab_size=300, hidden_size=64, num_layers=2, num_heads=2
    )


@pytest.fixture
def real_data() -> Path:
    if not SHARED_REAL.is_dir():
        pytest.skip(f"real data folder {SHARED_REAL} is absent")
    return SHARED_REAL
