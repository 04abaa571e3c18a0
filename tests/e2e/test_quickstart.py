"""`xstilts quickstart` end to end at its shipped settings, exactly as `make quickstart` runs it:
the printed table is the store's, and the miniature shows real zero-shot transfer (scores on
the synthetic languages clearly above chance and above the random-init control).

One run (7 to 15 minutes on 2 cores, by processor) serves every test here. Everything is seeded, so one machine
and thread setting gives the same digits every time; but 4,500 steps of MLM pretraining on a
CPU end in other digits on another processor or with other threads (BLAS kernels sum in other
orders), as far apart as two seeds. So no floor below is one seed's number: each comes from the
lowest value measured over several seeds (below), with room for another machine.
"""

import os
import re
import subprocess
import sys
from statistics import fmean

import pytest

from xstilts.experiments.quickstart import zero_shot_mean
from xstilts.experiments.store import ResultsStore

pytestmark = pytest.mark.slow

LANGUAGES = ("en", "xa", "xb", "xc", "xd")
ARMS = ("control", "none", "nli", "qa", "multi")
PRETRAINED = ARMS[1:]
TARGETS = ("synth-topic", "synth-paws", "synth-pos", "synth-tatoeba")
# Measured spread (the floors' source): zero-shot mean over xa-xd (test, %) at the shipped settings, seeds 0, 1, 2 on this 2-core CPU
# (issue 9's re-measurement), min-max over seeds:
# topic (chance 25): control 24.9-26.3; pretrained arms 48.4-83.4 (xa 49.8-94.0, English 93.8-98.8)
# paws (chance 50):  control 57.6-58.8; arms 57.8-69.9 (English 78.5-85.0); the arms' mean leads
# the control by 3.1-8.9
# pos (seqeval F1):  control 42.2-42.6; arms 61.6-73.9 (xa 72.5-89.7, English 99.1-99.7)
# tatoeba (500 candidates, chance 0.2): control 0.2-0.6; the arms' mean 1.0-2.5
# Arms move together within a seed (seed 2: every arm ~50 on topic): pretraining sets the level.
# Per trained target, floors for every pretrained arm: English, the zero-shot mean (xa-xd), its lead
# over the control arm, and xa (the relexified language keeps English grammar and script: it
# transfers best); None where the measured spread leaves no honest floor.
FLOORS = {"synth-topic": (88, 35, 10, 35), "synth-paws": (72, 53, None, None), "synth-pos": (95, 52, 8, 62)}
# The pretrained arms' mean lead over the control on PAWS: paraphrase pairs can be matched token by
# token in any language, so the control is above chance and one arm may tie with it.
PAWS_LEAD = 0.0


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory) -> tuple[str, ResultsStore]:
    store = tmp_path_factory.mktemp("quickstart") / "store"
    env = {**os.environ, "COLUMNS": "200"}
    done = subprocess.run([sys.executable, "-m", "xstilts.cli", "quickstart", "--store", str(store)],
                          capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout, ResultsStore(store)


def scores_by_arm(store: ResultsStore) -> dict[tuple[str, str], dict[str, float]]:
    """(arm, target) -> {language: test score (accuracy, or F1 for tagging)} from the store's rows."""
    scores = {}
    for run in store.runs():
        arm, target = re.match(r"quickstart-(\w+)-(synth-\w+)-", run["run"]).groups()
        scores[(arm, target)] = {r.language: r.value for r in store.results(run["run"])
                                 if r.phase == "target" and r.split == "test" and r.metric in ("accuracy", "f1")}
    return scores


def test_every_arm_and_target_ran_and_the_printed_table_is_the_stores(quickstart):
    printed, store = quickstart
    runs = store.runs()
    assert len(runs) == len(ARMS) * len(TARGETS) and all(run["status"] == "completed" for run in runs)
    assert str(store.path) in printed
    rows = [line for line in printed.splitlines() if re.search(r"synth-(topic|paws|pos|tatoeba)", line)]
    assert len(rows) == len(ARMS) * len(TARGETS)
    for (arm, target), values in scores_by_arm(store).items():
        languages = LANGUAGES if target != "synth-tatoeba" else LANGUAGES[1:]  # retrieval into English
        assert set(values) == set(languages), (arm, target)
        line = next(line for line in rows if target in line and f" {arm} " in line)
        # The same arithmetic and formatting as the table (one function, one format).
        expected = [f"{values[lang]:.1f}" for lang in languages] + [f"{zero_shot_mean(values):.1f}"]
        assert re.findall(r"\d+\.\d", line) == expected, (line, expected)


@pytest.mark.parametrize("target", [target for target in TARGETS if target in FLOORS])
def test_every_pretrained_arm_transfers_zero_shot(quickstart, target):
    _, store = quickstart
    scores = scores_by_arm(store)
    english, floor, lead, xa = FLOORS[target]
    control = zero_shot_mean(scores[("control", target)])
    for arm in PRETRAINED:
        values = scores[(arm, target)]
        transfer = zero_shot_mean(values)
        assert values["en"] > english and transfer > floor, (arm, values)
        assert lead is None or transfer > control + lead, (arm, values, control)
        assert xa is None or values["xa"] > xa, (arm, values)


def test_pretraining_beats_the_control_on_paraphrase(quickstart):
    _, store = quickstart
    scores = scores_by_arm(store)
    arms = fmean(zero_shot_mean(scores[(arm, "synth-paws")]) for arm in PRETRAINED)
    assert arms > zero_shot_mean(scores[("control", "synth-paws")]) + PAWS_LEAD, scores


def test_the_control_stays_at_chance_on_topic(quickstart):
    # Topic words share nothing across languages: without pretraining there is no transfer.
    _, store = quickstart
    control = scores_by_arm(store)[("control", "synth-topic")]
    assert abs(zero_shot_mean(control) - 25.0) < 8, control


def test_retrieval_on_the_encoder_beats_the_random_control(quickstart):
    # 500 candidates (chance 0.2%), no names or digits to match: sentence-level alignment from
    # non-parallel MLM is weak in a 2-layer model.
    _, store = quickstart
    scores = scores_by_arm(store)
    retrieval = {arm: zero_shot_mean(scores[(arm, "synth-tatoeba")]) for arm in ARMS}
    assert retrieval["control"] < 1.0 and fmean(retrieval[arm] for arm in PRETRAINED) > 0.5, retrieval
