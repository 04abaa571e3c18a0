"""Results as tables: one row per (run, phase, task, split, metric), one column per language."""

from __future__ import annotations

from collections import defaultdict

from rich.table import Table

from xstilts.results import ResultRow


def results_table(rows: list[ResultRow]) -> Table:
    """Languages as columns (English first, then alphabetical), with the mean over languages."""
    grouped: dict[tuple, dict[str, float]] = defaultdict(dict)
    for row in rows:
        grouped[(row.run, row.phase, row.task, row.split, row.metric)][row.language] = row.value
    languages = sorted({row.language for row in rows}, key=lambda lang: (lang != "en", lang))
    runs = sorted({row.run for row in rows})
    # With one run the run id goes into the title, leaving the width to the languages.
    run_column = ("run",) if len(runs) > 1 else ()
    title = f"xstilts results: {runs[0]}" if len(runs) == 1 else "xstilts results"
    table = Table(*run_column, "phase", "task", "split", "metric", "avg", *languages, title=title)
    for (run, phase, task, split, metric), values in grouped.items():
        mean = sum(values.values()) / len(values)
        cells = [f"{values[lang]:.2f}" if lang in values else "" for lang in languages]
        table.add_row(*((run,) if run_column else ()), phase, task, split, metric, f"{mean:.2f}", *cells)
    return table
