"""OpenLineage events of real runs: the demo DAG (green and breached) through Airflow's provider,
and ``tweetpipe extract`` / ``tweetpipe transform`` through the openlineage-python client.

The two demo runs are separate processes started side by side: an Airflow process caches its
OpenLineage transport, so each run needs its own to write its own events file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

from etl.lineage import emit
from tests.conftest import ROOT
from tests.openlineage_schemas import OUR_FACETS, validate_event

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

DEMO_TIMEOUT_S = 420
DEMO_WINDOW = ("2023-03-14T00:00:00Z", "2023-03-15T00:00:00Z")  # the demo run's data interval
CLI_TOKEN = "lineage-cli-test-token-5f0e9a7c31"


@dataclass
class DemoRun:
    """One finished ``tweetpipe demo`` process."""

    root: Path
    returncode: int
    output: str
    events_text: str

    @property
    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.events_text.splitlines() if line.strip()]

    @property
    def store(self) -> Path:
        return self.root / "store"


def _clean_env() -> dict[str, str]:
    # The demo configures Airflow and lineage itself; nothing from this process may leak in.
    prefixes = ("AIRFLOW", "OPENLINEAGE", "X_API", "X_BEARER")
    return {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}


PROBE_DIR = ROOT / "tests" / "integration" / "lineage_probe"


def _start_demo(root: Path, flags: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "etl", "demo", "--dir", str(root), *flags],
        cwd=ROOT,
        env=_clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _start_probe(root: Path) -> subprocess.Popen[str]:
    from etl.tools.demo import airflow_environment

    (root / "lineage").mkdir(parents=True)  # the file transport does not create folders
    env = {
        **_clean_env(),
        **airflow_environment(root / "airflow-home", root / "lineage" / "events.jsonl"),
        # dag.test() parses the DAG from the DAGs folder: the probe's own folder.
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROBE_DIR),
        "PYTHONPATH": str(ROOT),
    }
    return subprocess.Popen(
        [sys.executable, str(PROBE_DIR / "probe_dag.py")],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, DemoRun]]:
    """The green demo, the breached demo and the probe DAG, run side by side."""
    started: dict[str, tuple[Path, subprocess.Popen[str]]] = {}
    for name in ("green", "breach", "probe"):
        root = tmp_path_factory.mktemp(f"lineage-{name}") / "run"
        if name == "probe":
            started[name] = (root, _start_probe(root))
        else:
            started[name] = (root, _start_demo(root, ["--breach"] if name == "breach" else []))
    finished: dict[str, DemoRun] = {}
    try:
        for name, (root, proc) in started.items():
            output, _ = proc.communicate(timeout=DEMO_TIMEOUT_S)
            events = root / "lineage" / "events.jsonl"
            text = events.read_text(encoding="utf-8") if events.is_file() else ""
            finished[name] = DemoRun(root, proc.returncode, output, text)
    finally:
        for _, proc in started.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
    yield finished


@pytest.fixture(scope="module")
def demos(runs: dict[str, DemoRun]) -> dict[str, DemoRun]:
    return {name: runs[name] for name in ("green", "breach")}


def _by_job(events: list[dict[str, Any]], step: str) -> list[dict[str, Any]]:
    return [e for e in events if e["job"]["name"] == emit.job_name(step)]


def _final(events: list[dict[str, Any]], step: str) -> list[dict[str, Any]]:
    return [e for e in _by_job(events, step) if e["eventType"] in ("COMPLETE", "FAIL")]


def _one(datasets: list[dict[str, Any]], prefix: str) -> dict[str, Any]:
    (found,) = [d for d in datasets if d["name"].startswith(prefix)]
    return found


def _slug(dataset_name: str) -> str:
    return dataset_name.split("source=", 1)[1].split("/", 1)[0]


# --- @lineage_task alone: the probe DAG ------------------------------------------------------------
def test_probe_dag_ran_as_designed(runs: dict[str, DemoRun]) -> None:
    assert runs["probe"].returncode == 0, runs["probe"].output[-3000:]


def test_lineage_task_reports_inputs_at_start_and_outputs_at_complete(
    runs: dict[str, DemoRun],
) -> None:
    events = [e for e in runs["probe"].events if e["job"]["name"] == "lineage_probe.produce"]
    by_run: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        by_run[event["run"]["runId"]].append(event)
    # One run per mapped instance, each START then COMPLETE.
    assert len(by_run) == 2
    written = set()
    for start, complete in by_run.values():
        assert (start["eventType"], complete["eventType"]) == ("START", "COMPLETE")
        assert "airflow_mappedTask" in start["run"]["facets"]
        (source,) = start["inputs"]
        assert source["name"].startswith("raw/") and start["outputs"] == []
        assert [d["name"] for d in complete["inputs"]] == [source["name"]]
        (output,) = complete["outputs"]
        assert output["name"] == source["name"].replace("raw/", "staging/")
        assert output["outputFacets"]["outputStatistics"]["rowCount"] == 3
        written.add(output["name"])
    assert written == {"staging/a.json", "staging/b.json"}


def test_lineage_task_reports_what_a_failure_carries(runs: dict[str, DemoRun]) -> None:
    events = [e for e in runs["probe"].events if e["job"]["name"] == "lineage_probe.gate"]

    assert [e["eventType"] for e in events] == ["START", "FAIL"]
    (validated,) = events[1]["inputs"]
    (assertion,) = validated["inputFacets"]["dataQualityAssertions"]["assertions"]
    assert (assertion["success"], assertion["column"], assertion["actual"]) == (False, "c", "7")
    assert events[1]["run"]["facets"]["errorMessage"]["message"].startswith("probe gate failed")
    # dag.test(): the DAG itself gets its end event (FAIL here) but no START.
    dag_events = [
        e["eventType"] for e in runs["probe"].events if e["job"]["name"] == "lineage_probe"
    ]
    assert dag_events == ["FAIL"]


# --- the demo through Airflow ----------------------------------------------------------------------
def test_demo_runs_end_as_the_demo_promises(demos: dict[str, DemoRun]) -> None:
    assert demos["green"].returncode == 0, demos["green"].output[-3000:]
    assert demos["breach"].returncode == 1, demos["breach"].output[-3000:]
    assert demos["green"].events and demos["breach"].events


@pytest.mark.parametrize("run", ["green", "breach"])
def test_demo_events_validate_against_the_openlineage_schemas(
    demos: dict[str, DemoRun], run: str
) -> None:
    events = demos[run].events
    assert events
    errors = {f"{e['eventType']} {e['job']['name']}": validate_event(e, OUR_FACETS) for e in events}
    assert {k: v for k, v in errors.items() if v} == {}


@pytest.mark.parametrize("run", ["green", "breach"])
def test_every_step_run_has_a_start_and_one_end(demos: dict[str, DemoRun], run: str) -> None:
    states: dict[str, list[str]] = defaultdict(list)
    for event in demos[run].events:
        if event["job"]["name"].startswith(f"{emit.DAG_ID}.{emit.PER_SOURCE_GROUP}."):
            states[event["run"]["runId"]].append(event["eventType"])
    assert states
    for run_states in states.values():
        assert run_states[0] == "START"
        assert len(run_states) == 2 and run_states[1] in ("COMPLETE", "FAIL")
    assert {e["job"]["namespace"] for e in demos[run].events} == {"tweetpipe"}


def test_green_run_traces_each_curated_file_back_to_the_api(demos: dict[str, DemoRun]) -> None:
    events = demos["green"].events
    store = demos["green"].store
    extracted = {_slug(o["name"]): o for e in _final(events, "extract") for o in e["outputs"]}
    staged = {
        _slug(e["outputs"][0]["name"]): e for e in _final(events, "transform") if e["outputs"]
    }
    published = _final(events, "publish")
    assert len(published) == len(extracted) >= 2
    for event in published:
        assert event["eventType"] == "COMPLETE"
        (staging,), (curated,) = event["inputs"], event["outputs"]
        slug = _slug(curated["name"])
        # publish <- validate_curated <- transform <- validate_raw <- extract <- the X API
        transform = staged[slug]
        assert _one(transform["outputs"], "staging/")["name"] == staging["name"]
        raw = extracted[slug]["name"]
        assert [d["name"] for d in transform["inputs"]] == [raw]
        lineage_in = _one(transform["outputs"], "staging/")["facets"]["columnLineage"]["fields"]
        assert {(f["name"], f["field"]) for f in lineage_in["like_count"]["inputFields"]} == {
            (raw, "data[].public_metrics.like_count")
        }
        # The facets describe the published file itself.
        path = store / curated["name"]
        rows = path.read_bytes().count(b"\r\n") - 1  # RFC 4180 CSV, header first
        stats = curated["outputFacets"]["outputStatistics"]
        assert (stats["rowCount"], stats["size"]) == (rows, path.stat().st_size)
        assert curated["namespace"] == "file"
        assert (
            curated["facets"]["columnLineage"]["fields"]["text"]["inputFields"][0]["name"]
            == (staging["name"])
        )


def test_green_run_checkpoints_describe_their_inputs(demos: dict[str, DemoRun]) -> None:
    events = demos["green"].events
    for step, prefix in (("validate_raw", "raw/"), ("validate_curated", "staging/")):
        finals = _final(events, step)
        assert finals
        for event in finals:
            assert event["eventType"] == "COMPLETE"
            (validated,) = event["inputs"]
            assert validated["name"].startswith(prefix)
            facets = validated["inputFacets"]
            assertions = facets["dataQualityAssertions"]["assertions"]
            assert len(assertions) > 10 and all(a["success"] for a in assertions)
            assert facets["dataQualityMetrics"]["rowCount"] >= 1
    from etl.contracts.model import load_contract

    staging = _final(events, "validate_curated")[0]["inputs"][0]["inputFacets"]
    null_counts = staging["dataQualityMetrics"]["columnMetrics"]
    assert set(null_counts) == set(load_contract().column_names)
    assert null_counts["tweet_id"] == {"nullCount": 0}


@pytest.mark.parametrize("run", ["green", "breach"])
def test_every_dataset_of_every_step_carries_its_schema(
    demos: dict[str, DemoRun], run: str
) -> None:
    datasets = [
        d
        for e in demos[run].events
        if e["job"]["name"].startswith(f"{emit.DAG_ID}.{emit.PER_SOURCE_GROUP}.")
        for d in (*e.get("inputs", []), *e.get("outputs", []))
    ]
    assert datasets
    assert [d["name"] for d in datasets if not d.get("facets", {}).get("schema")] == []


def test_breach_fails_the_gate_with_its_evidence_and_publishes_nothing(
    demos: dict[str, DemoRun],
) -> None:
    events = demos["breach"].events
    failed = [e for e in _final(events, "validate_curated") if e["eventType"] == "FAIL"]
    assert failed
    for event in failed:
        (staging,) = event["inputs"]
        assertions = staging["inputFacets"]["dataQualityAssertions"]["assertions"]
        assert any(not a["success"] for a in assertions)
        message = event["run"]["facets"]["errorMessage"]["message"]
        assert "quality gate" in message and "tweets_curated" in message
    breached = {_slug(e["inputs"][0]["name"]) for e in failed}
    published = {_slug(o["name"]) for e in _final(events, "publish") for o in e["outputs"]}
    assert not breached & published
    for slug in breached:
        assert not list((demos["breach"].store / "curated").glob(f"source={slug}/**/*.csv"))


@pytest.mark.parametrize("run", ["green", "breach"])
def test_the_bearer_token_is_in_no_event(demos: dict[str, DemoRun], run: str) -> None:
    from etl.tools.emulator import DEMO_TOKEN

    assert demos[run].events_text
    assert DEMO_TOKEN not in demos[run].events_text
    assert "Bearer " not in demos[run].events_text


# --- the CLI -----------------------------------------------------------------------------------
@pytest.fixture
def cli_runs(
    emulator_factory: Callable[..., Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, Any]:
    from etl.adapters.cli import main
    from etl.tools.demo import demo_corpus

    server = emulator_factory(corpus=demo_corpus(), token=CLI_TOKEN)
    for var in [v for v in os.environ if v.startswith(("OPENLINEAGE", "AIRFLOW__OPENLINEAGE"))]:
        monkeypatch.delenv(var)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("X_API_BASE_URL", server.base_url)
    monkeypatch.setenv("X_BEARER_TOKEN", CLI_TOKEN)
    store = tmp_path / "store"
    window = ["--start", DEMO_WINDOW[0], "--end", DEMO_WINDOW[1]]
    extract_code = main(["extract", "--account", "ada_builds", "--store", str(store), *window])
    (raw,) = (store / "raw").glob("source=account-ada_builds/endpoint=*/window=*")
    out = tmp_path / "out"
    transform_code = main(["transform", str(raw), "--out", str(out)])
    return {
        "codes": (extract_code, transform_code),
        "extract": store / "lineage" / "events.jsonl",
        "transform": out / "lineage" / "events.jsonl",
        "raw": raw.relative_to(store).as_posix(),
        "out": out,
    }


def _read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_cli_runs_emit_the_dags_jobs_and_datasets(
    cli_runs: dict[str, Any], demos: dict[str, DemoRun]
) -> None:
    assert cli_runs["codes"] == (0, 0)
    extract, transform = _read(cli_runs["extract"]), _read(cli_runs["transform"])
    assert [e["eventType"] for e in extract] == ["START", "COMPLETE"]
    assert [e["eventType"] for e in transform] == ["START", "COMPLETE"]
    # Same jobs as the DAG's tasks: one graph whichever way the pipeline ran.
    airflow_jobs = {(e["job"]["namespace"], e["job"]["name"]) for e in demos["green"].events}
    assert (extract[1]["job"]["namespace"], extract[1]["job"]["name"]) in airflow_jobs
    assert (transform[1]["job"]["namespace"], transform[1]["job"]["name"]) in airflow_jobs
    # Same datasets: the CLI landed the demo's source and window under the same key.
    (raw,) = extract[1]["outputs"]
    assert (raw["namespace"], raw["name"]) == ("file", cli_runs["raw"])
    airflow_raw = {
        (o["namespace"], o["name"])
        for e in _final(demos["green"].events, "extract")
        for o in e["outputs"]
    }
    assert (raw["namespace"], raw["name"]) in airflow_raw
    assert [d["name"] for d in transform[1]["inputs"]] == [cli_runs["raw"]]
    curated = _one(transform[1]["outputs"], str(cli_runs["out"] / "tweets.csv"))
    like = curated["facets"]["columnLineage"]["fields"]["like_count"]["inputFields"]
    assert [(f["name"], f["field"]) for f in like] == [
        (cli_runs["raw"], "data[].public_metrics.like_count")
    ]
    rows = (cli_runs["out"] / "tweets.csv").read_bytes().count(b"\r\n") - 1
    assert curated["outputFacets"]["outputStatistics"]["rowCount"] == rows


def test_cli_events_hold_no_token(cli_runs: dict[str, Any]) -> None:
    for name in ("extract", "transform"):
        text = cli_runs[name].read_text(encoding="utf-8")
        assert text and CLI_TOKEN not in text


def test_cli_events_validate_against_the_openlineage_schemas(cli_runs: dict[str, Any]) -> None:
    events = [e for name in ("extract", "transform") for e in _read(cli_runs[name])]
    assert len(events) == 4
    assert [validate_event(e, OUR_FACETS) for e in events] == [[], [], [], []]


def test_cli_extract_to_s3_names_datasets_by_bucket_and_object_path(
    emulator_factory: Callable[..., Any],
    moto_server: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from etl.adapters.cli import main
    from etl.tools.demo import demo_corpus

    server = emulator_factory(corpus=demo_corpus(), token=CLI_TOKEN)
    for var in [v for v in os.environ if v.startswith(("OPENLINEAGE", "AIRFLOW__OPENLINEAGE"))]:
        monkeypatch.delenv(var)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("X_API_BASE_URL", server.base_url)
    monkeypatch.setenv("X_BEARER_TOKEN", CLI_TOKEN)
    # An S3 store has no local folder for a default events file: configure one, as users do.
    events_file = tmp_path / "events.jsonl"
    monkeypatch.setenv("OPENLINEAGE__TRANSPORT__TYPE", "file")
    monkeypatch.setenv("OPENLINEAGE__TRANSPORT__LOG_FILE_PATH", str(events_file))
    monkeypatch.setenv("OPENLINEAGE__TRANSPORT__APPEND", "true")
    window = ["--start", DEMO_WINDOW[0], "--end", DEMO_WINDOW[1]]

    code = main(["extract", "--account", "tomas_ng", "--store", moto_server.store_url, *window])

    assert code == 0
    complete = _read(events_file)[-1]
    (raw,) = complete["outputs"]
    assert raw["namespace"] == f"s3://{moto_server.bucket}"
    prefix = raw["name"] + "/"
    assert prefix.startswith("tweetpipe/raw/source=account-tomas_ng/endpoint=users_tweets/")
    landed = [k for k in moto_server.objects() if k.startswith(prefix)]
    assert f"{prefix}_manifest.json" in landed
    assert raw["outputFacets"]["outputStatistics"]["fileCount"] == len(landed) - 1
    assert CLI_TOKEN not in events_file.read_text(encoding="utf-8")
