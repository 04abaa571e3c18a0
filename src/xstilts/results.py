"""One result row: what every phase returns and the store keeps (below every layer that makes rows)."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class ResultRow:
    run: str
    phase: str
    task: str
    language: str
    split: str
    metric: str
    value: float

    def as_dict(self) -> dict:
        return asdict(self)


# A subset of a split is stored as its own split, "<split>/<subset>" (e.g. "test/hard", or a
# MultiCheckList test "test/<test name>"), so every filter, export and table handles it unchanged.
SUBSET_SEPARATOR = "/"


def subset_split(split: str, subset: str) -> str:
    """The split name under which the rows of `subset` of `split` are stored."""
    return f"{split}{SUBSET_SEPARATOR}{subset}"


def parse_split(split: str) -> tuple[str, str | None]:
    """("test", None) for "test"; ("test", "hard") for "test/hard"."""
    base, _, subset = split.partition(SUBSET_SEPARATOR)
    return base, subset or None
