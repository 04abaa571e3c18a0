"""The report's text-to-text output diagnostics, from a hand-built frame and a hand-written store.

Arms base / instruct, seeds 0 and 1, xquad in en (trained), de, th. wrong_script of base is
0 in en, 10 + 2*seed in de and 40 + 2*seed in th (means 0, 11, 41; zero-shot avg 26); instruct
has half of base's. not_in_context is 5 everywhere for base only. pawsx has invalid_outputs
for instruct only: 3 * (seed + 1) in every language (mean 4.5).
"""

from __future__ import annotations

import pandas as pd
import pytest

from xstilts.analysis.frame import load_frame
from xstilts.analysis.outputs import DIAGNOSTICS, outputs_tables
from xstilts.analysis.report import build_report
from xstilts.config.study import ReportConfig
from xstilts.errors import UserError
from xstilts.experiments.store import ResultsStore
from xstilts.results import ResultRow

REPORT = ReportConfig(arm_axis="arm", baseline="base", seed_axis="seed")
LANGUAGES = ("en", "de", "th")


def wrong_script(arm: str, seed: int, language: str) -> float:
    base = {"en": 0.0, "de": 10.0 + 2 * seed, "th": 40.0 + 2 * seed}[language]
    return base if arm == "base" else base / 2


def metrics_of(arm: str, task: str, seed: int, language: str) -> dict[str, float]:
    if task == "xquad":
        metrics = {"exact_match": 50.0, "f1": 60.0, "wrong_script": wrong_script(arm, seed, language)}
        return {**metrics, "not_in_context": 5.0} if arm == "base" else metrics
    metrics = {"accuracy": 70.0}
    return {**metrics, "invalid_outputs": 3.0 * (seed + 1)} if arm == "instruct" else metrics


def frame_rows(arm: str, task: str, seed: int, *, split: str = "test", run: str = "") -> list[dict]:
    run = run or f"{arm}-{task}-{seed}"
    common = {"run": run, "study": "s", "node": run, "phase": "target", "task": task, "split": split, "subset": "",
              "model": "m", "intermediate": "", "intermediate_languages": "", "seed": seed, "run_dir": f"/nowhere/{run}",
              "train_language": "en", "axis:arm": arm, "axis:seed": str(seed)}
    return [{**common, "language": language, "metric": metric, "value": value}
            for language in LANGUAGES for metric, value in metrics_of(arm, task, seed, language).items()]


def study_frame(*extra: list[dict]) -> pd.DataFrame:
    rows = [row for arm in ("base", "instruct") for task in ("xquad", "pawsx") for seed in (0, 1)
            for row in frame_rows(arm, task, seed)]
    return pd.DataFrame([*rows, *(row for group in extra for row in group)])


def test_tables_hold_the_mean_over_seeds_per_arm_diagnostic_and_language():
    tables = outputs_tables(study_frame(), REPORT)
    assert list(tables) == ["pawsx", "xquad"]
    xquad = tables["xquad"]
    assert xquad.columns == ["arm", "diagnostic", "seeds", "en", "de", "th", "zero-shot avg"]
    assert xquad.rows == [
        ["base", "wrong_script", 2, 0.0, 11.0, 41.0, 26.0],
        ["base", "not_in_context", 2, 5.0, 5.0, 5.0, 5.0],
        ["instruct", "wrong_script", 2, 0.0, 5.5, 20.5, 13.0],
    ]
    assert xquad.title == "xquad: text-to-text outputs (target, test)" and xquad.name == "outputs-xquad-target-test"
    assert xquad.notes[1:] == [f"wrong_script: {DIAGNOSTICS['wrong_script']}.", f"not_in_context: {DIAGNOSTICS['not_in_context']}."]
    assert tables["pawsx"].rows == [["instruct", "invalid_outputs", 2, 4.5, 4.5, 4.5, 4.5]]


def test_other_splits_and_phases_are_left_out():
    dev = frame_rows("base", "xquad", 0, split="dev", run="base-xquad-0")
    for row in dev:
        row["value"] = 99.0
    oracle = [{**row, "phase": "target-oracle", "value": 77.0} for row in frame_rows("base", "xquad", 1)]
    tables = outputs_tables(study_frame(dev, oracle), REPORT)
    assert tables["xquad"].rows[0] == ["base", "wrong_script", 2, 0.0, 11.0, 41.0, 26.0]
    assert outputs_tables(study_frame(dev, oracle), REPORT, phase="target-oracle")["xquad"].rows[0] == [
        "base", "wrong_script", 1, 77.0, 77.0, 77.0, 77.0]


def test_no_diagnostics_no_tables_and_no_arm_axis_needed():
    frame = study_frame()
    scores_only = frame[~frame["metric"].isin(DIAGNOSTICS)].drop(columns=["axis:arm"])
    assert outputs_tables(scores_only, REPORT) == {}


def test_several_runs_per_arm_and_seed_is_a_clear_error():
    twice = frame_rows("base", "xquad", 0, run="base-xquad-0-again")
    with pytest.raises(UserError, match="target 'xquad' has several runs per arm and seed"):
        outputs_tables(study_frame(twice), REPORT)


def write_store(tmp_path) -> ResultsStore:
    store = ResultsStore(tmp_path / "store")
    for arm in ("base", "instruct"):
        for seed in (0, 1):
            run = f"{arm}-{seed}"
            store.start_run(run, run, {"name": run, "model": "m", "seed": seed, "target": {"task": "xquad"}},
                            study="s", node=run, axes={"arm": arm, "seed": str(seed)})
            rows = [ResultRow(run, "target", "xquad", language, "test", metric, value)
                    for language in LANGUAGES for metric, value in metrics_of(arm, "xquad", seed, language).items()]
            store.complete_run(run, rows, [])
    return store


def test_a_store_report_has_the_section_and_the_scores_ignore_the_diagnostics(tmp_path):
    frame = load_frame(write_store(tmp_path), study="s")
    scores = frame[frame["metric"] == "score"]
    assert set(scores["value"]) == {55.0}  # (EM + F1) / 2: the diagnostics are no task score
    assert set(frame["metric"]) == {"exact_match", "f1", "score", "wrong_script", "not_in_context"}
    report = build_report(frame, REPORT, title="t", figures_dir=tmp_path, meta={})
    [section] = [s for s in report.sections if s.title == "Text-to-text outputs"]
    [table] = section.tables
    assert table.rows[0] == ["base", "wrong_script", 2, 0.0, 11.0, 41.0, 26.0]
    assert "accidental translation" in section.text[0]


def test_no_section_without_diagnostics(tmp_path):
    frame = load_frame(write_store(tmp_path), study="s")
    frame = frame[~frame["metric"].isin(DIAGNOSTICS)]
    report = build_report(frame, REPORT, title="t", figures_dir=tmp_path, meta={})
    assert "Text-to-text outputs" not in [s.title for s in report.sections]
    assert "Arms x targets" in [s.title for s in report.sections]


def test_a_prompt_axis_gives_one_section_per_prompt(tmp_path):
    """Study (a) runs every arm with and without instructions: the report slices by the prompt axis."""
    plain = study_frame().assign(**{"axis:prompt": "plain"})
    instruct = study_frame().assign(**{"axis:prompt": "instruct"})
    instruct["run"] = instruct["run"] + "-instruct"
    instruct.loc[instruct["metric"] == "wrong_script", "value"] += 1.0
    report = build_report(pd.concat([plain, instruct], ignore_index=True), REPORT, title="t", figures_dir=tmp_path, meta={})
    sections = {s.title: s for s in report.sections if s.title.startswith("Text-to-text outputs")}
    assert list(sections) == ["Text-to-text outputs (prompt=plain)", "Text-to-text outputs (prompt=instruct)"]
    rows = {title: {table.title.split(":")[0]: table.rows[0] for table in s.tables} for title, s in sections.items()}
    assert rows["Text-to-text outputs (prompt=plain)"]["xquad"] == ["base", "wrong_script", 2, 0.0, 11.0, 41.0, 26.0]
    assert rows["Text-to-text outputs (prompt=instruct)"]["xquad"] == ["base", "wrong_script", 2, 1.0, 12.0, 42.0, 27.0]
