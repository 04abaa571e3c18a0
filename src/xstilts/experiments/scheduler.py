"""Run a study's node graph on an executor: what is not done, in dependency order, a few at once.

A node starts when every dependency is done; at most `limit` nodes are in flight. A node that
fails (a failed outcome, an exception, a crashed worker) fails its dependants, with the reason
"dependency <id> failed: <reason>", and the other nodes go on. Nothing here keeps state: the
store and the checkpoint cache say what is done, so a rerun after any failure or kill runs only
what is missing.

A node that can never run beside another (every other node is its ancestor or its dependant,
such as a study's prepare node) is submitted with the executor's `submit_alone` where it has
one, so it gets every core instead of a worker's share. This is decided from the whole graph,
not from what happens to be in flight, so a node's thread count does not depend on timing.
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
    alone = lone_nodes(nodes)
    submit_alone = getattr(executor, "submit_alone", executor.submit)
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
                submit = submit_alone if node_id in alone else executor.submit
                in_flight[submit(fn, node, home)] = node
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


def lone_nodes(nodes: Mapping[str, Node]) -> set[str]:
    """The nodes that never run beside another: every other node is an ancestor or a dependant.

    Example:
        >>> lone_nodes({"p": Node("p", "prepare", "s"), "a": Node("a", "run", "s", ("p",)), "b": Node("b", "run", "s", ("p",))})
        {'p'}
    """
    ancestors: dict[str, set[str]] = {}
    for node_id, node in nodes.items():  # dependency order: a node's deps come first
        ancestors[node_id] = set().union(*({dep} | ancestors.get(dep, set()) for dep in node.deps))
    related = {node_id: set(found) for node_id, found in ancestors.items()}
    for node_id, found in ancestors.items():
        for ancestor in found:
            related[ancestor].add(node_id)
    return {node_id for node_id, found in related.items() if len(found) == len(nodes) - 1}


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
