"""The real thing: a local Airflow 3 runs the DAG, and a browser shows the UI and the Data Docs.

One local Airflow for the module (``tweetpipe airflow up``, LocalExecutor, SQLite, the emulators
on loopback), started as a user starts it, without ``--triggered-only``: the scheduler starts the
DAG's run of the latest daily interval by itself (the bundled ``pipeline.yaml``'s sources), and
creates the runs of the consumer DAG ``tweetpipe_curated_summary`` that publishes trigger through
the curated Assets. Through the REST API the DAG is checked for import errors and run twice more:
a green run against the clean emulator, and a breach run against the drift-mode emulator (DAG
param ``x_conn_id=x_api_drift``); every check about a run filters by that run. After the publishes
the consumer must have run and summarised every published partition, and none the breach held
back. Then headless Chromium logs in through the login page, shows the breach run's graph with the
red quality gate, and opens the published Data Docs at the failed validation. Last,
``tweetpipe airflow down`` must leave no process behind.

``TWEETPIPE_UPDATE_SCREENSHOTS=1 uv run pytest tests/e2e`` also refreshes the README's screenshots.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import re
import socket
import subprocess
import sys
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import psutil
import pytest
import requests
import yaml
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from etl.steps.quality.docs_index import LATEST
from etl.storage.keys import SUMMARY_PREFIX, partition_for
from tests.e2e.conftest import ROOT, AirflowApi, RunningAirflow, save_screenshot, wait_until

if TYPE_CHECKING:
    from pathlib import Path

    from playwright.sync_api import Browser, Page

DAG_ID = "tweetpipe"
CONSUMER = "tweetpipe_curated_summary"
GATES = ("per_source.validate_raw", "per_source.validate_curated")
PUBLISH = "per_source.publish"
SOURCES = ["account:ada_builds", "account:tomas_ng"]
# The profile as a user starts it: the scheduler runs the schedules (conftest's airflow fixture).
TRIGGERED_ONLY = False
# Three runs side by side on two shared cores: the two triggered here and the scheduler's own.
RUN_TIMEOUT = 600.0
# After the last run ended, until every publish has been consumed by a finished consumer run.
CONSUMER_TIMEOUT = 300.0
TERMINAL = {"success", "failed"}
# Two different weeks inside the emulator's default corpus (about two posts per account a day),
# so the runs write different partitions, may run side by side, and the drift has rows to break.
RUNS: dict[str, dict[str, Any]] = {
    "green": {
        "dag_run_id": "e2e-green",
        "logical_date": "2023-03-08T00:00:00Z",
        "data_interval_start": "2023-03-01T00:00:00Z",
        "data_interval_end": "2023-03-08T00:00:00Z",
        "conf": {"sources": SOURCES},
    },
    "breach": {
        "dag_run_id": "e2e-breach",
        "logical_date": "2023-03-15T00:00:00Z",
        "data_interval_start": "2023-03-08T00:00:00Z",
        "data_interval_end": "2023-03-15T00:00:00Z",
        "conf": {"sources": SOURCES, "x_conn_id": "x_api_drift"},
    },
}


def _emulator_token() -> str:
    from etl.tools.emulator import DEMO_TOKEN

    return str(DEMO_TOKEN)


def _task_states(api: AirflowApi, run_id: str) -> dict[tuple[str, int], str | None]:
    doc = api.get(f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances", limit=100)
    return {(ti["task_id"], ti["map_index"]): ti["state"] for ti in doc["task_instances"]}


def _import_errors_once_parsed(api: AirflowApi) -> list[dict[str, Any]]:
    """Wait (bounded) until the dag-processor has parsed the DAG file or reported it broken."""

    def parsed() -> dict[str, Any] | None:
        errors: dict[str, Any] = api.get("/importErrors")
        if errors["total_entries"] or api.get("/dags", dag_id_pattern=DAG_ID)["total_entries"]:
            return errors
        return None

    doc = wait_until("the DAG file to be parsed", parsed, timeout=120)
    return list(doc["import_errors"])


def _scheduled_runs(api: AirflowApi) -> list[dict[str, Any]]:
    return list(api.get(f"/dags/{DAG_ID}/dagRuns", run_type="scheduled", limit=100)["dag_runs"])


@pytest.fixture(scope="module")
def runs(api: AirflowApi) -> dict[str, dict[str, Any]]:
    """Trigger the green and the breach run, find the scheduler's own run, and wait (bounded)
    until all of them are finished. Keyed ``green``, ``breach``, and the scheduled runs' ids."""
    errors = _import_errors_once_parsed(api)
    assert errors == [], errors
    # No unpausing here: the local profile brings the DAGs up unpaused (test_dag_...below).
    started = time.monotonic()
    for body in RUNS.values():
        api.post(f"/dags/{DAG_ID}/dagRuns", body)
    # Once the DAG is parsed the scheduler creates the run of the latest daily interval.
    scheduled = wait_until("the scheduler's own run", lambda: _scheduled_runs(api), timeout=120)
    run_ids = {key: body["dag_run_id"] for key, body in RUNS.items()}
    run_ids.update({r["dag_run_id"]: r["dag_run_id"] for r in scheduled})

    def finished() -> dict[str, dict[str, Any]] | None:
        docs = {k: api.get(f"/dags/{DAG_ID}/dagRuns/{run_id}") for k, run_id in run_ids.items()}
        if all(d["state"] in TERMINAL for d in docs.values()):
            return docs
        return None

    docs = wait_until("the runs to finish", finished, timeout=RUN_TIMEOUT, interval=3)
    took = time.monotonic() - started
    print(f"\n[e2e] {len(docs)} runs finished {took:.0f} s after triggering: ", end="")
    print(", ".join(f"{k} {d['state']} in {d.get('duration') or 0:.0f} s" for k, d in docs.items()))
    return {
        name: {
            "run_id": doc["dag_run_id"],
            "run_type": doc["run_type"],
            "state": doc["state"],
            "seconds": took,
            "duration": doc.get("duration"),
            "data_interval": (doc["data_interval_start"], doc["data_interval_end"]),
            "tasks": _task_states(api, doc["dag_run_id"]),
        }
        for name, doc in docs.items()
    }


def test_up_prints_url_and_login_but_not_the_token(airflow: RunningAirflow) -> None:
    out = airflow.up_output

    assert airflow.url in out
    assert f"login:     {airflow.username} / {airflow.password}" in out
    assert _emulator_token() not in out


def test_health_reports_every_component(airflow: RunningAirflow) -> None:
    resp = requests.get(f"{airflow.url}/api/v2/monitor/health", timeout=15)

    assert resp.status_code == 200
    health = resp.json()
    for component in ("metadatabase", "scheduler", "triggerer", "dag_processor"):
        assert health[component]["status"] == "healthy", health


def test_only_loopback_listens(airflow: RunningAirflow) -> None:
    listening = []
    for proc in _our_processes(airflow):
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            listening += [c.laddr for c in proc.net_connections("inet") if c.status == "LISTEN"]

    # The api-server and the two emulators at least, and nothing on another interface.
    assert len(listening) >= 3
    assert {addr.ip for addr in listening} == {"127.0.0.1"}


def test_dag_has_no_import_errors(api: AirflowApi) -> None:
    errors = _import_errors_once_parsed(api)

    assert errors == []
    dag = api.get(f"/dags/{DAG_ID}")
    assert dag["is_stale"] is False
    assert dag["fileloc"] == str(ROOT / "dags" / "tweetpipe_dag.py")


def test_the_dags_come_up_ready_to_run(api: AirflowApi) -> None:
    _import_errors_once_parsed(api)
    consumer = wait_until(
        "the consumer DAG to be parsed",
        lambda: api.get("/dags", dag_id_pattern=CONSUMER)["dags"],
        timeout=120,
    )

    assert api.get(f"/dags/{DAG_ID}")["is_paused"] is False
    assert consumer[0]["is_paused"] is False


def test_green_run_publishes_every_source(runs: dict[str, dict[str, Any]]) -> None:
    green = runs["green"]

    assert green["state"] == "success", green["tasks"]
    per_source = {k: s for k, s in green["tasks"].items() if k[0].startswith("per_source.")}
    assert len({i for _, i in per_source}) == len(SOURCES)
    assert set(per_source.values()) == {"success"}
    assert green["tasks"][("build_docs", -1)] == "success"
    assert green["tasks"][("all_sources_published", -1)] == "skipped"


def test_breach_run_fails_at_the_quality_gate(runs: dict[str, dict[str, Any]]) -> None:
    breach = runs["breach"]
    tasks = breach["tasks"]
    failed_gates = {(t, i) for (t, i), s in tasks.items() if t in GATES and s == "failed"}

    assert breach["state"] == "failed", tasks
    assert failed_gates, f"no quality gate failed: {tasks}"
    for _, index in failed_gates:
        # Nothing reaches curated/ for a source whose gate failed.
        assert tasks.get((PUBLISH, index)) in ("upstream_failed", "skipped"), tasks
    assert not any(t == "per_source.extract" and s != "success" for (t, _), s in tasks.items())
    assert tasks[("build_docs", -1)] == "success"
    assert tasks[("all_sources_published", -1)] == "failed"


def _asset_events(api: AirflowApi, run_id: str) -> list[dict[str, Any]]:
    doc = api.get("/assets/events", source_dag_id=DAG_ID, source_run_id=run_id, limit=100)
    return list(doc["asset_events"])


def _published(runs: dict[str, dict[str, Any]], run_key: str) -> list[int]:
    tasks = runs[run_key]["tasks"]
    return sorted(i for (t, i), s in tasks.items() if t == PUBLISH and s == "success")


def test_each_publish_emits_an_asset_event_and_a_breach_none(
    api: AirflowApi, airflow: RunningAirflow, runs: dict[str, dict[str, Any]]
) -> None:
    from etl.lineage.datasets import curated_dataset_uri

    green = _asset_events(api, runs["green"]["run_id"])
    breach = _asset_events(api, runs["breach"]["run_id"])
    slugs = [s.replace(":", "-") for s in SOURCES]

    assert sorted(e["uri"] for e in green) == [
        curated_dataset_uri(str(airflow.store), slug) for slug in slugs
    ]
    for event in green:
        extra = event["extra"]
        assert {"rows", "quarantined", "sha256", "contract_version"} <= set(extra)
        assert (extra["interval_start"], extra["interval_end"]) == (
            "2023-03-01T00:00:00+00:00",
            "2023-03-08T00:00:00+00:00",
        )
        body = (airflow.store / extra["curated_key"]).read_bytes()
        assert hashlib.sha256(body).hexdigest() == extra["sha256"]
    # Only what was published is announced: none for a source whose gate failed.
    assert len(breach) == len(_published(runs, "breach")) < len(SOURCES)


def test_the_scheduler_runs_the_latest_daily_interval_by_itself(
    runs: dict[str, dict[str, Any]],
) -> None:
    """What a user's ``airflow up`` does: one run of yesterday's interval, at once, green."""
    scheduled = [r for r in runs.values() if r["run_type"] == "scheduled"]
    config = yaml.safe_load((ROOT / "pipeline.yaml").read_text(encoding="utf-8"))
    sources = len(config["sources"]["accounts"]) + len(config["sources"]["queries"])

    assert len(scheduled) == 1, scheduled  # catchup=False: the latest interval only
    run = scheduled[0]
    start, end = (datetime.fromisoformat(t) for t in run["data_interval"])
    assert end - start == timedelta(days=1)
    assert end == end.replace(hour=0, minute=0, second=0, microsecond=0)
    assert timedelta(0) <= datetime.now(UTC) - end <= timedelta(days=1)
    assert run["state"] == "success", run["tasks"]
    assert len(_published(runs, run["run_id"])) == sources


def _consumer_run_events(api: AirflowApi, run_id: str) -> list[dict[str, Any]]:
    path = f"/dags/{CONSUMER}/dagRuns/{run_id}/upstreamAssetEvents"
    return list(api.get(path)["asset_events"])


def _seconds_between(earlier: str, later: str) -> float:
    return (datetime.fromisoformat(later) - datetime.fromisoformat(earlier)).total_seconds()


@pytest.fixture(scope="module")
def consumer(api: AirflowApi, runs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Wait (bounded) until every run of the consumer DAG is finished and, between them, they
    consumed every asset event the tweetpipe runs' publishes emitted.

    Returns:
        ``published`` (event id -> event, of every tweetpipe run), ``runs`` (consumer run id ->
        the run with its triggering ``events``) and ``by_event`` (event id -> consumer run ids).
    """
    published = {e["id"]: e for run in runs.values() for e in _asset_events(api, run["run_id"])}
    assert published, "no publish emitted an asset event"
    started = time.monotonic()

    def consumed() -> dict[str, Any] | None:
        listed = api.get(f"/dags/{CONSUMER}/dagRuns", limit=100)["dag_runs"]
        if not listed or any(r["state"] not in TERMINAL for r in listed):
            return None
        done = {
            r["dag_run_id"]: {**r, "events": _consumer_run_events(api, r["dag_run_id"])}
            for r in listed
        }
        by_event: dict[int, list[str]] = defaultdict(list)
        for run_id, run in done.items():
            for event in run["events"]:
                by_event[event["id"]].append(run_id)
        if published.keys() <= by_event.keys():
            return {"published": published, "runs": done, "by_event": dict(by_event)}
        return None

    found = wait_until("the consumer DAG's runs", consumed, timeout=CONSUMER_TIMEOUT, interval=3)
    # How soon after a publish its consumer run started, and when it was done.
    lags = []
    for event_id, event in published.items():
        run = found["runs"][found["by_event"][event_id][0]]
        lags.append(
            (
                _seconds_between(event["timestamp"], run["start_date"]),
                _seconds_between(event["timestamp"], run["end_date"]),
            )
        )
    print(
        f"\n[e2e] consumer: {len(found['runs'])} runs for {len(published)} publishes, all "
        f"finished {time.monotonic() - started:.0f} s after the last tweetpipe run; each started "
        f"{min(s for s, _ in lags):.1f}-{max(s for s, _ in lags):.1f} s and was done "
        f"{min(e for _, e in lags):.1f}-{max(e for _, e in lags):.1f} s after its publish"
    )
    return found


def test_the_consumer_dag_runs_after_the_publishes(
    api: AirflowApi, runs: dict[str, dict[str, Any]], consumer: dict[str, Any]
) -> None:
    published, by_event = consumer["published"], consumer["by_event"]
    green = {e["id"] for e in _asset_events(api, runs["green"]["run_id"])}

    assert green and green <= by_event.keys()
    for run in consumer["runs"].values():
        assert run["state"] == "success", run
        assert run["run_type"] == "asset_triggered", run
        # Triggered by publishes only, each publish of the tweetpipe runs being one of them.
        assert run["events"], run
        assert {e["id"] for e in run["events"]} <= published.keys(), run["events"]
        assert {(e["source_dag_id"], e["source_task_id"]) for e in run["events"]} == {
            (DAG_ID, PUBLISH)
        }
    # Each publish triggered exactly one consumer run: none is summarised twice or skipped.
    assert sorted(by_event) == sorted(published)
    assert all(len(run_ids) == 1 for run_ids in by_event.values()), by_event


def _summary_keys(airflow: RunningAirflow) -> set[str]:
    root = airflow.store / SUMMARY_PREFIX
    return {p.relative_to(airflow.store).as_posix() for p in root.rglob("*") if p.is_file()}


def test_the_consumer_summarises_every_published_partition(
    airflow: RunningAirflow, consumer: dict[str, Any]
) -> None:
    expected = set()
    for event in consumer["published"].values():
        extra = event["extra"]
        start, end = (datetime.fromisoformat(extra[k]) for k in ("interval_start", "interval_end"))
        partition = partition_for(extra["source"], start, end)
        body = (airflow.store / partition.curated_key).read_bytes()
        posts = list(csv.DictReader(io.StringIO(body.decode("utf-8"), newline="")))
        summary = json.loads((airflow.store / partition.summary_key).read_text(encoding="utf-8"))

        assert summary["posts"] == len(posts) == extra["rows"], (partition.summary_key, summary)
        assert summary["sha256"] == extra["sha256"] == hashlib.sha256(body).hexdigest()
        assert summary["quarantined"] == extra["quarantined"]
        expected.add(partition.summary_key)

    # One summary per published partition, and nothing else under summaries/.
    assert _summary_keys(airflow) == expected


def test_a_breach_triggers_no_summary_of_its_partition(
    airflow: RunningAirflow, runs: dict[str, dict[str, Any]], consumer: dict[str, Any]
) -> None:
    breach = runs["breach"]
    start, end = (datetime.fromisoformat(t) for t in breach["data_interval"])
    failed = sorted({i for (t, i), s in breach["tasks"].items() if t in GATES and s == "failed"})
    consumed = {
        (e["extra"]["source"], e["extra"]["interval_start"])
        for run in consumer["runs"].values()
        for e in run["events"]
    }

    assert failed, breach["tasks"]
    for index in failed:
        slug = SOURCES[index].replace(":", "-")
        partition = partition_for(slug, start, end)
        assert not (airflow.store / partition.summary_key).exists()
        assert not (airflow.store / partition.curated_key).exists()
        assert (slug, start.isoformat()) not in consumed


def test_mapped_instances_are_labelled_by_source(
    api: AirflowApi, runs: dict[str, dict[str, Any]]
) -> None:
    run_id = runs["green"]["run_id"]
    doc = api.get(f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances", limit=100)
    labels = {
        (ti["task_id"], ti["map_index"]): ti.get("rendered_map_index")
        for ti in doc["task_instances"]
        if ti["task_id"].startswith("per_source.")
    }
    slugs = [s.replace(":", "-") for s in SOURCES]

    for task_id in ("per_source.extract", "per_source.validate_curated", PUBLISH):
        assert [labels[(task_id, i)] for i in range(len(SOURCES))] == slugs, labels


def _task_log(api: AirflowApi, run_id: str, task_id: str, map_index: int) -> list[str]:
    path = f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{task_id}/logs/1"
    resp = api.session.get(
        f"{api.url}/api/v2{path}",
        params={"map_index": map_index, "full_content": "true"},
        headers={"Accept": "application/json"},
        timeout=30,
    )
    assert resp.ok, resp.text[:500]
    lines = []
    for entry in resp.json()["content"]:
        if isinstance(entry, dict):
            lines.append(str(entry.get("event", "")))
            for item in entry.get("error_detail") or []:
                lines.append(str(item.get("exc_value", "")))
        else:
            lines.append(str(entry))
    return lines


def test_the_failed_gate_log_is_short_and_ends_in_the_users_terms(
    api: AirflowApi, airflow: RunningAirflow, runs: dict[str, dict[str, Any]]
) -> None:
    task_id, map_index = _failed_gate(runs)
    text = "\n".join(_task_log(api, RUNS["breach"]["dag_run_id"], task_id, map_index))
    summary = _checkpoint_xcom(api, task_id, map_index)

    assert "because it is a closure" not in text
    assert len(text.splitlines()) < 120, text[-3000:]
    # The page is named where a user can open it, not by its store key.
    assert f"Data Docs: {airflow.store}/docs/{summary['docs_page']}" in text
    tail = text[text.rindex("In short:") :]
    assert re.search(r"quarantined \d+ of \d+ posts \(\d+(\.\d)? %\); the contract allows", tail)


def _login(page: Page, airflow: RunningAirflow, next_path: str) -> None:
    page.goto(f"{airflow.url}{next_path}", timeout=30_000)
    # Not logged in: the SimpleAuthManager's login page, which sends us back to next_path.
    page.wait_for_url(re.compile(r".*/auth/login.*"), timeout=30_000)
    page.fill("input[name=username]", airflow.username)
    page.fill("input[name=password]", airflow.password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{airflow.url}{next_path}*", timeout=30_000)


def test_ui_graph_shows_the_failed_gate(
    browser: Browser,
    airflow: RunningAirflow,
    runs: dict[str, dict[str, Any]],
    screenshot_dir: Path,
) -> None:
    run_id = RUNS["breach"]["dag_run_id"]
    context = browser.new_context(viewport={"width": 1600, "height": 600})
    try:
        page = context.new_page()
        _login(page, airflow, f"/dags/{DAG_ID}/runs/{run_id}")
        page.get_by_role("button", name=re.compile("Show Graph")).click()
        page.get_by_role("button", name="Expand all task groups").click()
        gate = page.locator(".react-flow__node[data-id='per_source.validate_curated']")
        gate.wait_for(timeout=30_000)
        page.get_by_role("button", name="Collapse Details Panel").click()
        page.get_by_role("button", name="Fit View").click()
        page.wait_for_timeout(1_000)  # the fit-view animation
        nodes = {
            node.get_attribute("data-id"): node.inner_text()
            for node in page.locator(".react-flow__node").all()
        }
        save_screenshot(page.screenshot(), "airflow-graph-breach.png", screenshot_dir)
    finally:
        context.close()

    for task in ("plan_sources", "build_docs", "all_sources_published", *GATES, PUBLISH):
        assert task in nodes, f"{task} not drawn: {sorted(nodes)}"
    failed_gate_nodes = [t for t in GATES if "failed" in nodes[t].split()]
    assert failed_gate_nodes, {t: nodes[t] for t in GATES}
    assert "upstream_failed" in nodes[PUBLISH].split() or "skipped" in nodes[PUBLISH].split()
    assert "success" in nodes["build_docs"].split()


def test_ui_trigger_form_needs_nothing_typed(
    browser: Browser, airflow: RunningAirflow, screenshot_dir: Path
) -> None:
    context = browser.new_context(viewport={"width": 1600, "height": 1000})
    try:
        page = context.new_page()
        _login(page, airflow, f"/dags/{DAG_ID}")
        page.get_by_role("button", name="Trigger").first.click()
        dialog = page.get_by_role("dialog")
        dialog.wait_for(timeout=30_000)
        # The params sit under "Run Parameters"; open them so the screenshot shows the defaults.
        section = dialog.get_by_text("Run Parameters").first
        store_help = dialog.get_by_text("Empty: $TWEETPIPE_STORE", exact=False).first
        for _ in range(3):  # the dialog may still be opening when the first click lands
            section.click()
            page.wait_for_timeout(1_500)
            if store_help.is_visible():
                break
        if store_help.is_visible():
            store_help.scroll_into_view_if_needed()
        submit = dialog.get_by_role("button", name="Trigger")
        enabled = submit.last.is_enabled()
        text = " ".join(
            t or "" for t in dialog.locator("[data-part=helper-text]").all_text_contents()
        )
        save_screenshot(page.screenshot(), "airflow-trigger-form.png", screenshot_dir)
    finally:
        context.close()

    assert enabled, "Trigger is disabled with the optional params left empty"
    assert "Empty: $TWEETPIPE_STORE" in " ".join(text.split())


def test_ui_lists_the_curated_assets(
    browser: Browser,
    airflow: RunningAirflow,
    runs: dict[str, dict[str, Any]],
    screenshot_dir: Path,
) -> None:
    context = browser.new_context(viewport={"width": 1600, "height": 700})
    try:
        page = context.new_page()
        _login(page, airflow, "/assets")
        # An asset announced through the alias is listed once the dag-processor has parsed the
        # consumer DAG again (every 30 s), which may be after the runs ended: reload until then.
        listed = page.get_by_text("curated/source=account-ada_builds").first
        for _ in range(24):
            try:
                listed.wait_for(timeout=5_000)
                break
            except PlaywrightTimeoutError:
                page.reload()
        listed.wait_for(timeout=5_000)
        page.wait_for_timeout(1_000)
        text = page.inner_text("body")
        save_screenshot(page.screenshot(), "airflow-assets.png", screenshot_dir)
    finally:
        context.close()

    for source in SOURCES:
        assert f"curated/source={source.replace(':', '-')}" in text


def test_ui_shows_a_readable_failed_gate_log(
    browser: Browser,
    airflow: RunningAirflow,
    runs: dict[str, dict[str, Any]],
    screenshot_dir: Path,
) -> None:
    task_id, map_index = _failed_gate(runs)
    run_id = RUNS["breach"]["dag_run_id"]
    context = browser.new_context(viewport={"width": 1600, "height": 1000})
    try:
        page = context.new_page()
        _login(page, airflow, f"/dags/{DAG_ID}/runs/{run_id}/tasks/{task_id}/mapped/{map_index}")
        page.get_by_text("In short:").last.wait_for(timeout=60_000)
        page.get_by_text("In short:").last.scroll_into_view_if_needed()
        page.wait_for_timeout(1_000)
        text = page.inner_text("body")
        save_screenshot(page.screenshot(), "airflow-failed-gate-log.png", screenshot_dir)
    finally:
        context.close()

    assert "the contract allows at most" in text
    assert "because it is a closure" not in text


def _failed_gate(runs: dict[str, dict[str, Any]]) -> tuple[str, int]:
    failed = sorted(
        (t, i) for (t, i), s in runs["breach"]["tasks"].items() if t in GATES and s == "failed"
    )
    assert failed, runs["breach"]["tasks"]
    return failed[0]


def _checkpoint_xcom(api: AirflowApi, task_id: str, map_index: int) -> dict[str, Any]:
    run_id = RUNS["breach"]["dag_run_id"]
    path = f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/checkpoint"
    value = api.get(path, map_index=map_index)["value"]
    return json.loads(value) if isinstance(value, str) else dict(value)


def _expected_texts(summary: dict[str, Any]) -> list[str]:
    """What the page must show for each failed expectation: the suite's description of it (GX
    renders an expectation's description as its name), else the column it checks."""
    suite = json.loads((ROOT / "expectations" / f"{summary['suite']}.json").read_text("utf-8"))
    texts = []
    for failed in summary["failed"]:
        candidates = [
            e
            for e in suite["expectations"]
            if e["type"] == failed["expectation_type"]
            and e["kwargs"].get("column") == failed.get("column")
            and (not failed.get("rule") or failed["rule"] in (e.get("meta") or {}).get("rules", []))
        ]
        assert candidates, f"failed expectation not in the suite: {failed}"
        text = candidates[0].get("description") or failed.get("column")
        assert text, f"nothing on the page could name {failed}"
        texts.append(" ".join(str(text).split()))
    return texts


def test_data_docs_show_the_failed_expectation(
    browser: Browser,
    airflow: RunningAirflow,
    api: AirflowApi,
    runs: dict[str, dict[str, Any]],
    screenshot_dir: Path,
) -> None:
    task_id, map_index = _failed_gate(runs)
    summary = _checkpoint_xcom(api, task_id, map_index)
    expected = _expected_texts(summary)
    index = airflow.store / "docs" / "index.html"
    gates = Counter(s for run in runs.values() for (t, _), s in run["tasks"].items() if t in GATES)
    # Tall enough for the whole page, so the clip below needs no scrolling.
    context = browser.new_context(viewport={"width": 1000, "height": 3000})
    # Tests stay off the network: every request that leaves file:// is refused (the site ships
    # its own pinned copies of the scripts and styles its pages load).
    context.route("**/*", _offline)
    try:
        page = context.new_page()
        page.goto(index.as_uri(), timeout=30_000)
        runs_table = page.locator("#tweetpipe-runs")
        runs_table.wait_for(state="visible", timeout=30_000)
        statuses = [" ".join(s.split()) for s in runs_table.locator("td.status").all_inner_texts()]
        link = runs_table.locator(f'tr.failed a[href="{summary["docs_page"]}"]')
        link.wait_for(state="visible", timeout=10_000)
        save_screenshot(runs_table.screenshot(), "data-docs-index.png", screenshot_dir)
        link.click()
        page.wait_for_url(f"**/{summary['docs_page']}", timeout=30_000)
        text = " ".join(page.inner_text("body").split())
        # From the overview (status, counts, run) down to the failed expectation's row.
        top = page.locator("#section-1").bounding_box()
        row = page.locator("tr", has_text=expected[0]).last.bounding_box()
        assert top and row, "the page has no overview or no row for the failed expectation"
        # The page's own "What was checked" table (failed checks first) may come before GX's.
        y0 = min(top["y"], row["y"])
        height = max(top["y"] + top["height"], row["y"] + row["height"]) + 4 - y0
        png = page.screenshot(
            clip={"x": 0, "y": y0, "width": 1000, "height": height}, full_page=True
        )
        save_screenshot(png, "data-docs-failed-validation.png", screenshot_dir)
    finally:
        context.close()

    # One row per gate that ran, in any of the runs (the scheduler's own too); the failed gates'
    # rows say so (a gate that failed only warning expectations passed, and its row says
    # "Warnings only"). The table shows the latest LATEST validations: these runs' all fit.
    ran = sum(gates[k] for k in ("success", "failed"))
    assert ran <= LATEST, gates
    assert len(statuses) == ran, statuses
    assert sum(s.endswith("Failed") for s in statuses) == gates["failed"], statuses
    assert "Status: Failed" in text
    assert summary["run_name"] in text
    assert f"Unsuccessful Expectations {len(summary['failed'])}" in text
    for name in expected:
        assert name in text


def _offline(route: Any) -> None:
    if route.request.url.startswith("file://"):
        route.continue_()
    else:
        route.abort()


def _our_processes(airflow: RunningAirflow) -> list[psutil.Process]:
    """Every process ``airflow up`` started, and their descendants."""
    body = json.loads(airflow.pid_file.read_text(encoding="utf-8"))
    procs: dict[int, psutil.Process] = {}
    for entry in body["processes"]:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc = psutil.Process(entry["pid"])
            if abs(proc.create_time() - entry["create_time"]) < 0.01:
                procs[proc.pid] = proc
                procs.update({c.pid: c for c in proc.children(recursive=True)})
    return list(procs.values())


def test_no_secret_in_any_file(airflow: RunningAirflow, runs: dict[str, dict[str, Any]]) -> None:
    token = _emulator_token().encode()
    files = [p for p in airflow.directory.rglob("*") if p.is_file()]

    assert len(files) > 20  # logs, task logs, the store, the database
    leaks = [str(p) for p in files if token in p.read_bytes()]
    assert leaks == []


def test_airflow_down_stops_every_process(airflow: RunningAirflow) -> None:
    before = _our_processes(airflow)
    port = int(airflow.url.rsplit(":", 1)[1])
    assert len(before) >= 6  # four Airflow components and two emulators, plus their children

    proc = subprocess.run(
        [sys.executable, "-m", "etl", "airflow", "down", "--dir", str(airflow.directory)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert proc.returncode == 0, proc.stdout + proc.stderr
    alive = [p.pid for p in before if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert alive == []
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass
    assert not airflow.pid_file.exists()
