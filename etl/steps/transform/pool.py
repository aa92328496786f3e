"""Running units in worker processes, and the garbage collector's settings while a run lasts.

The reference runs every unit in the caller's process with the collector as it is; a pool of
workers (:func:`results_in_parallel`) gives the same results in the same order, and
:func:`few_gc_passes` only changes how often the collector runs (tested equal).
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import sys
from typing import TYPE_CHECKING, Any

from etl.steps.transform.unit import UnitProcessor

if TYPE_CHECKING:
    from collections.abc import Iterator
    from concurrent.futures import Future

    from etl.contracts.model import ContractSpec
    from etl.steps.transform.unit import Parts, UnitResult

_GC_THRESHOLD = (50_000, 20, 100)


@contextlib.contextmanager
def few_gc_passes() -> Iterator[None]:
    """Fewer cyclic garbage collections while the transform runs.

    It allocates millions of short-lived, acyclic objects (freed by reference counting anyway);
    at the default threshold the collector would rescan them every 700 allocations and cost
    about 15% of the run. Objects that exist before the run are frozen out of the scans.

    Yields:
        Nothing; the previous settings are back when the block ends.
    """
    threshold = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(*_GC_THRESHOLD)
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()


def results_in_parallel(
    spec: ContractSpec, parts: Parts, units: Iterator[list[tuple[str, bytes]]], workers: int
) -> Iterator[UnitResult]:
    """Process units in worker processes.

    Args:
        spec: the contract.
        parts: the parts each worker's unit processor is built from.
        units: the units of ``(source, body)`` pages, in input order.
        workers: how many processes.

    Yields:
        Each unit's result, in input order. At most two units per worker are in flight, so
        memory stays flat however long the input.
    """
    from collections import deque

    with _new_pool(workers) as pool:
        pending: deque[Future[UnitResult]] = deque()
        try:
            for unit in units:
                pending.append(pool.submit(_work, spec, parts, unit))
                if len(pending) >= 2 * workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)  # the run failed: no more work
            raise


_WORKER: UnitProcessor | None = None  # a worker's unit processor, for the last contract seen


def _work(spec: ContractSpec, parts: Parts, pages: list[tuple[str, bytes]]) -> UnitResult:
    global _WORKER
    if _WORKER is None or _WORKER.spec != spec or _WORKER.parts != parts:
        _WORKER = UnitProcessor(spec, parts)
    return _WORKER.process(pages)


def _new_pool(workers: int) -> Any:
    import multiprocessing
    import threading
    from concurrent.futures import ProcessPoolExecutor

    # Imported once here, pandas and pandera come with every forked worker for free (each would
    # otherwise spend a third of a second of CPU importing its own).
    import pandera.pandas  # noqa: F401

    # With other threads running, forking is unsafe and spawn is used instead.
    method = "fork" if threading.active_count() == 1 else "spawn"
    if method not in multiprocessing.get_all_start_methods():
        method = "spawn"
    context = multiprocessing.get_context(method)
    return ProcessPoolExecutor(workers, context, _warm_worker, (os.getpid(),))


def _warm_worker(parent: int) -> None:
    """A worker's start: it dies with ``parent``, the process running the transform; with fork
    it shares the modules that process imported; a spawned worker imports pandas and pandera
    here, before any work."""
    _die_with_parent(parent)
    # Ctrl-C reaches the whole process group: the parent reports it; a worker just stops,
    # without a traceback of its own.
    signal.signal(signal.SIGINT, lambda *_: os._exit(128 + signal.SIGINT))
    import pandera.pandas  # noqa: F401

    gc.freeze()  # as in few_gc_passes, for the worker's lifetime
    gc.set_threshold(*_GC_THRESHOLD)


_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _die_with_parent(parent: int) -> None:
    """Have the kernel kill this process when ``parent`` dies, however it dies (Linux).

    A worker whose parent was killed would otherwise wait for work forever: it holds its
    siblings' queue open, and the pipes that tell the lineage process its step has ended.
    """
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):  # no prctl: nothing to ask for
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before the request: no signal would come
        os._exit(1)
