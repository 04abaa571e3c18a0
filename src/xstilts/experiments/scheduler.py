"""Run a study's node graph on an executor: what is not done, in dependency order, a few at once.

A node starts when every dependency is done; at most `limit` nodes are in flight. A node that
fails (a failed outcome, an exception, a crashed worker) fails its dependants, with the reason
"dependency <id> failed: <reason>", and the other nodes go on. Nothing here keeps state: the
store and the checkpoint cache say what is done, so a rerun after any failure or kill runs only
what is missing.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from xstilts.config.study import ExecutorConfig
from xstilts.experiments.executors import Executor, build_executor
from xstilts.experiments.store import COMPLETED, FAILED
from xstilts.experiments.study import DONE, Node, NodeOutcome, NodeStatus, Study, execute_node, one_line


@dataclass(frozen=True)
class Event:
    """A node started or ended (for the console)."""

    kind: str  # started | completed | failed
    node: Node
    outcome: NodeOutcome | None = None


def outcome_of(node: Node, future: concurrent.futures.Future) -> NodeOutcome:
    """The future's outcome; an exception (a bug, a crashed worker process) is a failed node."""
    error = future.exception()
    if error is not None:
        return NodeOutcome(node.id, FAILED, f"{type(error).__name__}: {one_line(error)}")
    return future.result()


def run_graph(
    nodes: Mapping[str, Node],
    todo: set[str],
    executor: Executor,
    limit: int,
    home: str,
    fn: Callable[[Node, str], NodeOutcome] = execute_node,
    on_event: Callable[[Event], None] = lambda event: None,
) -> dict[str, NodeOutcome]:
    """Run the nodes in `todo` (the others are done) and return each one's outcome.

    Args:
        nodes: every node of the graph, in dependency order.
        todo: the ids of the nodes to run.
        limit: nodes in flight at once.
        fn: the picklable top-level function submitted per node, `fn(node, home)`.
    """
    outcomes: dict[str, NodeOutcome] = {}
    waiting = [node_id for node_id in nodes if node_id in todo]
    in_flight: dict[concurrent.futures.Future, Node] = {}
    causes: dict[str, str] = {}  # failed node -> the reason its dependants fail with
    while waiting or in_flight:
        for node_id in list(waiting):
            node = nodes[node_id]
            failed = [dep for dep in node.deps if dep in causes]
            if failed:
                waiting.remove(node_id)
                outcomes[node_id] = NodeOutcome(node_id, FAILED, causes[failed[0]])
                causes[node_id] = causes[failed[0]]
                on_event(Event(FAILED, node, outcomes[node_id]))
            elif len(in_flight) < limit and all(dep not in todo or completed(outcomes.get(dep)) for dep in node.deps):
                waiting.remove(node_id)
                on_event(Event("started", node))
                in_flight[executor.submit(fn, node, home)] = node
        if not in_flight:
            continue
        finished, _ = concurrent.futures.wait(in_flight, return_when=concurrent.futures.FIRST_COMPLETED)
        for future in finished:
            node = in_flight.pop(future)
            outcome = outcomes[node.id] = outcome_of(node, future)
            if outcome.status != COMPLETED:
                causes[node.id] = f"dependency {node.id} failed: {outcome.message}"
            on_event(Event(outcome.status, node, outcome))
    return outcomes


def completed(outcome: NodeOutcome | None) -> bool:
    return outcome is not None and outcome.status == COMPLETED


def run_study(
    study: Study, cfg: ExecutorConfig, statuses: dict[str, NodeStatus], on_event: Callable[[Event], None] = lambda event: None
) -> dict[str, NodeOutcome]:
    """Run the nodes of `study` that are not done (by `statuses`) on the executor `cfg` names."""
    todo = {node for node, status in statuses.items() if status.status != DONE}
    executor = build_executor(cfg, study.home)
    try:
        return run_graph(study.nodes, todo, executor, cfg.workers, str(study.home), on_event=on_event)
    finally:
        executor.shutdown()
