"""Every shipped study (configs/studies/) validates, and its report section can be read: the axes,
arms, reference numbers and language properties it names exist, and each research question of
REFERENCE.md section 4 ships a full-scale and a miniature form."""

from __future__ import annotations

from pathlib import Path

import pytest

from xstilts.analysis.degradation import parse_size
from xstilts.analysis.groups import load_language_groups
from xstilts.analysis.reference import load_references
from xstilts.config.loading import read_yaml
from xstilts.config.schema import ModelMode
from xstilts.config.study import axis_entries
from xstilts.experiments.study import PHASE2, PLACEHOLDERS, RUN, load_study
from xstilts.tasks.registry import load_registry
from xstilts.tasks.spec import Format

STUDIES = Path(__file__).resolve().parents[2] / "configs" / "studies"
SHIPPED = sorted(STUDIES.glob("*.yaml"))
QUESTIONS = ["rq-a-instruction", "rq-b-language", "rq-c-morphology", "rq-d-mixtures", "rq-e-size"]
BENCHMARKS = {"xtreme", "xtreme-r"}


@pytest.mark.parametrize("path", SHIPPED, ids=lambda path: path.name)
def test_every_study_expands_and_its_report_names_what_exists(tmp_path, path):
    study = load_study(path, tmp_path)
    runs = [node for node in study.nodes.values() if node.kind == RUN]
    assert len(runs) == len(study.points) >= 2
    report, axes = study.config.report, study.config.axes
    document = read_yaml(path, "study")
    if path.stem != "quickstart-seeds":  # the seeds study predates reports; every other one has its section
        assert "report" in document, f"{path.name}: no report section"
        assert report.arm_axis in axes
    arms = {label for label, _ in axis_entries(report.arm_axis, axes[report.arm_axis], path)} if report.arm_axis in axes else set()
    for arm in (report.baseline, report.control):
        assert arm is None or arm in arms
    assert report.seed_axis is None or report.seed_axis in axes
    assert report.benchmark is None or report.benchmark in BENCHMARKS
    if report.reference is not None:
        assert report.reference in load_references()
    groups = load_language_groups()
    registry = load_registry()
    if report.group_by:  # every language of every target has the properties the tables group by
        for target in {point.config.target.task for point in study.points}:
            for language in registry.get(target).languages:
                assert set(report.group_by) <= set(groups[language]), (target, language, report.group_by)
    if report.size is not None:
        labels = [label for label, _ in axis_entries(report.size.axis, axes[report.size.axis], path)]
        sizes = [parse_size(label, report.size) for label in labels]
        assert sizes == sorted(sizes) and len(set(sizes)) == len(sizes), sizes
        if report.size.subset is not None:
            for point in study.points:
                assert report.size.subset in registry.get(point.config.target.task).subsets


def test_each_research_question_has_a_full_and_a_mini_form():
    names = {path.stem for path in SHIPPED}
    for question in QUESTIONS:
        assert {question, f"{question}-mini"} <= names
    assert "paper-9x9" in names


@pytest.mark.parametrize("question", QUESTIONS)
def test_mini_forms_run_on_the_miniature_and_full_forms_on_hub_models(tmp_path, question):
    full, mini = (load_study(STUDIES / f"{name}.yaml", tmp_path) for name in (question, f"{question}-mini"))
    assert mini.quickstart is not None and full.quickstart is None
    assert all(task.startswith("synth-") for point in mini.points
               for task in [point.config.target.task, *(point.config.intermediate.tasks if point.config.intermediate else [])])
    assert not any(point.config.model.startswith("quickstart:") for point in full.points)
    assert full.config.executor.slurm.gpus_per_node >= 1 and {p.config.precision.value for p in full.points} == {"bf16"}
    models = {point.labels[mini.config.report.arm_axis]: point.config.model for point in mini.points}
    assert set(models.values()) <= set(PLACEHOLDERS)
    if question == "rq-a-instruction":  # text-to-text start models, no control (below)
        assert models[mini.config.report.baseline] == "quickstart:t5"
        return
    if question != "rq-e-size":  # a size axis holds only sizes
        assert models[mini.config.report.control] == "quickstart:initial"
    assert models[mini.config.report.baseline] == "quickstart:pretrained"
    assert set(models.values()) <= set(PLACEHOLDERS)


@pytest.mark.parametrize("name", ["rq-a-instruction", "rq-a-instruction-mini"])
def test_the_instruction_studies_run_text_to_text_with_and_without_instructions(tmp_path, name):
    """Research question (a): every run is text-to-text, each start model runs with the mT5
    rendering and with the tasks' `instruct` prompts, and every task the runs train on has one."""
    study = load_study(STUDIES / f"{name}.yaml", tmp_path)
    assert {point.config.mode for point in study.points} == {ModelMode.TEXT_TO_TEXT}
    prompts = {point.labels["prompt"]: point.config.text_to_text.prompt for point in study.points}
    assert prompts == {"plain": None, "instruct": "instruct"}
    registry = load_registry()
    for point in study.points:
        config = point.config
        tasks = [config.target.task, *(config.intermediate.tasks if config.intermediate else [])]
        for task in tasks:
            spec = registry.get(task)
            if config.text_to_text.prompt and spec.format is not Format.SPAN_CORRUPTION:
                assert config.text_to_text.prompt in spec.prompts, (name, task)
    # The prompt changes the training text: each (arm with phase 2, prompt, seed) trains its own phase 2.
    trained = {p.labels["arm"] for p in study.points if p.config.intermediate}
    assert sum(node.kind == PHASE2 for node in study.nodes.values()) == len(trained) * 2 * 3
    arms = {}
    for point in study.points:
        intermediate = tuple(point.config.intermediate.tasks) if point.config.intermediate else ()
        arms[point.labels["arm"]] = (point.config.model, intermediate, dict(point.config.target.auxiliary))
    if name.endswith("-mini"):
        assert arms == {
            "base": ("quickstart:t5", (), {}), "base-nli": ("quickstart:t5", ("synth-mnli",), {}),
            "instruct": ("quickstart:t5-instruct", (), {}), "instruct-nli": ("quickstart:t5-instruct", ("synth-mnli",), {}),
        }
        return
    pairs = {"mt5": "google/mt5-base", "mt0": "bigscience/mt0-base", "t5": "google/t5-base-lm-adapt", "flan-t5": "google/flan-t5-base"}
    for arm, model in pairs.items():
        assert arms[arm] == (model, (), {}) and arms[f"{arm}-mnli"] == (model, ("mnli",), {})
    mitigation = ("span-corruption-multilingual", 0.05)
    assert arms["mt5-mnli-sc"] == ("google/mt5-base", ("mnli", mitigation[0]), dict([mitigation]))


def test_the_morphology_and_language_minis_use_the_new_synthetic_data(tmp_path):
    morph = load_study(STUDIES / "rq-c-morphology-mini.yaml", tmp_path)
    assert {tuple(p.config.intermediate.tasks) for p in morph.points if p.config.intermediate} == {("synth-morph",)}
    assert morph.config.report.group_by == ["morphology"]
    language = load_study(STUDIES / "rq-b-language-mini.yaml", tmp_path)
    trained = {p.labels["arm"]: dict(p.config.intermediate.train_languages) for p in language.points if p.config.intermediate}
    assert trained == {"nli-en": {}, "nli-xa": {"synth-mnli": "xa"}, "nli-xc": {"synth-mnli": "xc"}}
    size = load_study(STUDIES / "rq-e-size-mini.yaml", tmp_path)
    caps = {p.labels["size"]: (p.config.intermediate.max_examples if p.config.intermediate else None) for p in size.points}
    assert caps == {"0": None, "250": {"synth-mnli": 250}, "1000": {"synth-mnli": 1000}, "all": {}}
