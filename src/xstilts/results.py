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
