"""The lineage of a CLI run, emitted by a child process beside it.

Importing the OpenLineage client costs about a quarter of a second of CPU, as much as a small
transform. :func:`lineage_run_beside` forks a child at the start of the run that imports it and
emits START while this process sets up the step on the other core; when the step ends, the child
is told the outcome, emits COMPLETE or FAIL and exits; when the step's process dies without a
word (killed), the child notices (its pipe closes, or it is adopted by another parent: a process
the step forked may keep the pipe open) and emits FAIL. Events, job and datasets are exactly those
of :func:`etl.lineage.emit.lineage_run`, which the child runs: the step only names the builders of
:mod:`etl.lineage.builders` to call and their arguments, so this process never imports the client.

Where a fork is unsafe (other threads running) or impossible, the same happens in this process.
Lineage stays an observer: a child that fails or dies never fails the step.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import threading
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator
    from contextlib import AbstractContextManager
    from multiprocessing.connection import Connection
    from pathlib import Path
    from types import ModuleType

    from etl.lineage.emit import LineageRun

log = logging.getLogger(__name__)

Call = tuple[str, tuple[Any, ...]]  # a builder of etl.lineage.builders, by name, and its arguments
_JOIN_TIMEOUT_S = 60.0  # the child's transport has its own timeouts; this bounds a stuck one
_PARENT_POLL_S = 0.5  # how often the child checks that the step's process is still its parent


@dataclass
class BesideRun:
    """What a step tells its lineage while it runs.

    Attributes:
        calls: builders of :mod:`etl.lineage.builders` whose results are added to the run, in order.
        error: why the run failed, when it did.
        stack_trace: the trace of the exception that failed it, if one did.
        destination: where the events went, for the CLI summary (set when the run ends).
    """

    calls: list[Call] = field(default_factory=list)
    error: str | None = None
    stack_trace: str | None = None
    destination: str = "not emitted (the lineage process ended early)"

    def add(self, builder: str, *args: Any) -> None:
        """Add what ``etl.lineage.builders.<builder>(*args)`` returns (a ``StepLineage``) to the run.

        Args:
            builder: the name of a function of :mod:`etl.lineage.builders`.
            *args: its arguments (plain data: paths, strings, the report dictionary).
        """
        self.calls.append((builder, args))

    def fail(self, message: str, stack_trace: str | None = None) -> None:
        """Mark the run failed although the step returned normally.

        Args:
            message: the breach or failure, for the ``errorMessage`` facet.
            stack_trace: the trace of the exception behind it, if any.
        """
        self.error, self.stack_trace = message, stack_trace


@contextmanager
def lineage_run_beside(step: str, inputs: Call, *, out_dir: Path | None) -> Iterator[BesideRun]:
    """Emit START, then COMPLETE or FAIL, around one CLI run of a step, from a child process.

    Args:
        step: the task id in the DAG (see :func:`etl.lineage.emit.lineage_run`).
        inputs: the builder of the datasets known before the step runs, and its arguments.
        out_dir: the run's output directory: events go to ``etl.lineage.emit.events_file(out_dir)``
            when no transport is configured.

    Yields:
        The run, to add lineage to; an exception from the body fails it and propagates.
    """
    run = BesideRun()
    if not hasattr(os, "fork") or threading.active_count() > 1:
        with _in_this_process(step, inputs, out_dir, run):
            yield run
        return
    context = multiprocessing.get_context("fork")
    outcome_in, outcome_out = context.Pipe(duplex=False)
    reply_in, reply_out = context.Pipe(duplex=False)
    child = context.Process(
        target=_child,
        args=(step, inputs, out_dir, outcome_in, reply_out),
        name="tweetpipe-lineage",
        daemon=True,
    )
    # Ctrl-C is for the step's process, which then reports the interruption: the child starts
    # with SIGINT blocked (a signal arriving meanwhile waits for this process) and ignores it.
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        child.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    outcome_in.close()
    reply_out.close()
    try:
        yield run
    except BaseException as exc:
        run.fail(str(exc) or type(exc).__name__, "".join(traceback.format_exception(exc)))
        raise
    finally:
        _finish(child, run, outcome_out, reply_in)


def _finish(
    child: multiprocessing.process.BaseProcess,
    run: BesideRun,
    outcome_out: Connection,
    reply_in: Connection,
) -> None:
    with contextlib.suppress(OSError):  # the child is gone: the run still stands
        outcome_out.send(run)
    outcome_out.close()
    if reply_in.poll(_JOIN_TIMEOUT_S):
        with contextlib.suppress(EOFError, OSError):
            run.destination = reply_in.recv()
    reply_in.close()
    child.join(_JOIN_TIMEOUT_S)
    if child.is_alive():
        log.warning("OpenLineage events of this run: the lineage process hung and was stopped")
        child.kill()
        child.join()


def _child(
    step: str,
    inputs: Call,
    out_dir: Path | None,
    outcome_in: Connection,
    reply_out: Connection,
) -> None:
    from etl.lineage import builders, emit

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    step_pid = os.getppid()
    with _lineage_run(emit, builders, step, inputs, out_dir) as real:
        _replay(builders, real, _outcome(outcome_in, step_pid))
    reply_out.send(real.destination)
    sys.stdout.flush()
    sys.stderr.flush()


def _outcome(outcome_in: Connection, step_pid: int) -> BesideRun:
    """What the step tells, or a failure when its process dies without a word (killed)."""
    told = BesideRun(error="the run's process ended without reporting an outcome")
    parent = multiprocessing.parent_process()
    sentinels = [outcome_in] + ([parent.sentinel] if parent is not None else [])
    while True:
        ready = multiprocessing.connection.wait(sentinels, timeout=_PARENT_POLL_S)
        if outcome_in in ready:
            with contextlib.suppress(EOFError):
                told = outcome_in.recv()
            return told
        # The sentinel only closes once every process holding it has: one the step forked
        # after this one (a worker) may outlive it. Being adopted says the step is gone.
        if ready or os.getppid() != step_pid:
            return told


def _lineage_run(
    emit: ModuleType, builders: ModuleType, step: str, inputs: Call, out_dir: Path | None
) -> AbstractContextManager[LineageRun]:
    events = emit.events_file(out_dir)
    run: AbstractContextManager[LineageRun] = emit.lineage_run(
        step, _built(builders, inputs), default_file=events
    )
    return run


def _built(builders: ModuleType, call: Call) -> Any:
    builder, args = call
    return getattr(builders, builder)(*args)


def _replay(builders: ModuleType, real: LineageRun, told: BesideRun) -> None:
    for call in told.calls:
        real.add(_built(builders, call))
    if told.error is not None:
        real.fail(told.error, told.stack_trace)


@contextmanager
def _in_this_process(
    step: str, inputs: Call, out_dir: Path | None, run: BesideRun
) -> Iterator[None]:
    from etl.lineage import builders, emit

    with _lineage_run(emit, builders, step, inputs, out_dir) as real:
        run.destination = real.destination
        try:
            yield
        finally:  # an exception propagates through lineage_run, which reports it
            _replay(builders, real, run)
