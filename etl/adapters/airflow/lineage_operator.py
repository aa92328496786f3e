"""The Airflow side of lineage: ``@lineage_task``, a TaskFlow ``@task`` that reports its datasets.

``apache-airflow-providers-openlineage`` emits START and COMPLETE/FAIL for every task instance, but
a plain ``@task`` tells it nothing about data: the provider's Python extractor sees only source
code. The provider asks an operator for lineage through three methods,
``get_openlineage_facets_on_start()``, ``..._on_complete(task_instance)`` and
``..._on_failure(task_instance)``, each returning an ``OperatorLineage``. ``@lineage_task`` is
``@task`` with an operator that implements them: it keeps the return value (or the exception) on
the operator while the task runs, and hands the step's lineage builder from
:mod:`etl.lineage.builders` a :class:`~etl.lineage.builders.TaskCall`: the task's input payload,
which is the value of the task function's first parameter (the payload the upstream task
returned, typed in :mod:`etl.payloads`), and its returned payload or exception. The builder never
sees the DAG's other parameters or their names. The listener runs in the task's own process after
``execute``, so nothing extra travels through XCom.

Usage in a DAG (job name ``<dag_id>.<task_id>``, e.g. ``tweetpipe.transform``)::

    from etl.adapters.airflow.lineage_operator import lineage_task

    @lineage_task(retries=3)
    def transform(checked: ValidateRawPayload, params: dict) -> TransformPayload: ...

The builder is looked up by the function's name in :data:`etl.lineage.builders.TASK_LINEAGE`, or
passed as ``lineage=``. Lineage never fails a task: a builder error is logged at ERROR with its
traceback and the event goes out without datasets.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

from airflow.providers.standard.decorators.python import _PythonDecoratedOperator
from airflow.sdk.bases.decorator import task_decorator_factory

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow.providers.openlineage.extractors import OperatorLineage
    from airflow.sdk.bases.decorator import TaskDecorator
    from airflow.sdk.definitions.context import Context

    from etl.lineage.builders import LineageBuilder, TaskCall
    from etl.lineage.datasets import StepLineage


class LineageDecoratedOperator(_PythonDecoratedOperator):
    """The operator behind ``@lineage_task``: a TaskFlow Python operator that reports lineage.

    Args:
        lineage: builds the step's lineage from a :class:`etl.lineage.builders.TaskCall`;
            default: the builder registered for the function's name in
            :data:`etl.lineage.builders.TASK_LINEAGE`.
        **kwargs: everything ``@task`` accepts.
    """

    custom_operator_name = "@lineage_task"

    def __init__(self, *, lineage: LineageBuilder | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.lineage = lineage
        self._lineage_result: Any = None
        self._lineage_error: BaseException | None = None

    def execute(self, context: Context) -> Any:
        """Run the task function, keeping its result or exception for the lineage methods."""
        try:
            result = super().execute(context)
        except BaseException as exc:
            self._lineage_error = exc
            raise
        self._lineage_result = result
        return result

    def _payload(self) -> Any:
        """The task's input payload: the value of the task function's first parameter."""
        signature = inspect.signature(self.python_callable)
        first = next(iter(signature.parameters), None)
        if first is None:
            return None
        try:
            bound = signature.bind_partial(*self.op_args, **self.op_kwargs)
        except TypeError:
            return self.op_kwargs.get(first)
        return bound.arguments.get(first)

    def _call(self, *, finished: bool) -> TaskCall[Any, Any]:
        from etl.lineage.builders import TaskCall

        return TaskCall(
            payload=self._payload(),
            result=self._lineage_result if finished else None,
            error=self._lineage_error if finished else None,
        )

    def _lineage(self, call: TaskCall[Any, Any]) -> OperatorLineage[Any, Any]:
        from airflow.providers.openlineage.extractors import OperatorLineage

        from etl.lineage.builders import task_lineage

        built: StepLineage = task_lineage(self.python_callable.__name__, call, self.lineage)
        return OperatorLineage(
            inputs=list(built.inputs),
            outputs=list(built.outputs),
            run_facets=dict(built.run_facets),
        )

    def get_openlineage_facets_on_start(self) -> OperatorLineage[Any, Any]:
        """Lineage for the START event: the inputs the arguments name."""
        return self._lineage(self._call(finished=False))

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage[Any, Any]:
        """Lineage for the COMPLETE event: inputs, outputs and facets from the result."""
        return self._lineage(self._call(finished=True))

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> OperatorLineage[Any, Any]:
        """Lineage for the FAIL event: what the failure says (e.g. a gate's results)."""
        return self._lineage(self._call(finished=True))


def lineage_task(
    python_callable: Callable[..., Any] | None = None,
    *,
    multiple_outputs: bool | None = None,
    **kwargs: Any,
) -> TaskDecorator:
    """``@task`` whose OpenLineage events carry the step's real datasets and facets.

    Args:
        python_callable: the task function (when used as ``@lineage_task`` without arguments).
        multiple_outputs: as for ``@task``.
        **kwargs: as for ``@task`` (``retries``, ``retry_exponential_backoff``...), plus
            ``lineage=`` to give the lineage builder explicitly.

    Returns:
        A TaskFlow decorator.
    """
    decorator: TaskDecorator = task_decorator_factory(
        python_callable=python_callable,
        multiple_outputs=multiple_outputs,
        decorated_operator_class=LineageDecoratedOperator,
        **kwargs,
    )
    return decorator
