"""``tweetpipe transform`` as a user runs it: a real process, files in, exit code and files out."""

from __future__ import annotations

import base64
import contextlib
import csv
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil
import pytest

from etl.adapters.cli import main
from etl.steps.transform import curate
from tests.pages import body, ids, mixed_corpus, page, tweet

if TYPE_CHECKING:
    from etl.steps.transform.unit import UnitResult

TWEETPIPE = Path(sys.executable).with_name("tweetpipe")  # the installed console script


def _tweetpipe(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(TWEETPIPE), "transform", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_directory_of_json_and_jsonl_passes_and_publishes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = tmp_path / "raw" / "source=alice"
    raw.mkdir(parents=True)
    (raw / "page-00001.json").write_bytes(body(page([tweet(t) for t in ids(0, 3)])))
    jsonl = b"\n".join(body(page([tweet(t)])) for t in ids(2, 3)) + b"\n"
    (raw / "more.jsonl").write_bytes(jsonl)
    (raw / "notes.txt").write_text("not an input")
    out = tmp_path / "out"

    code = main(["transform", str(tmp_path / "raw"), "--out", str(out)])  # in-process: fast

    assert code == 0
    assert capsys.readouterr().out.strip() == str(out / "tweets.csv")
    with (out / "tweets.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["tweet_id"] for r in rows] == [ids(2, 3)[0], ids(3, 1)[0], ids(4, 1)[0], *ids(0, 2)]
    assert rows[0]["source_page"] == f"{raw / 'more.jsonl'}:1"
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert {k: report[k] for k in ("tweets_in", "curated", "duplicates", "pages", "passed")} == {
        "tweets_in": 6,
        "curated": 5,
        "duplicates": 1,
        "pages": 4,
        "passed": True,
    }
    assert (out / "quarantine.jsonl").read_text() == ""
    assert not list(out.glob(".*partial*"))


def test_gate_breach_exits_1_names_the_check_and_publishes_no_csv(tmp_path: Path) -> None:
    src = tmp_path / "page.json"
    posts = [tweet(t) for t in ids(0, 8)] + [tweet(t, created_at="not a time") for t in ids(50, 2)]
    src.write_bytes(body(page(posts)))
    out = tmp_path / "out"
    out.mkdir()
    (out / "tweets.csv").write_text("stale from an earlier run")

    proc = _tweetpipe(str(src), "--out", str(out))

    assert proc.returncode == 1
    assert "quarantined_share: 20.00% of posts quarantined (2 of 10)" in proc.stderr
    assert str(out / "quarantine.jsonl") in proc.stderr
    assert not (out / "tweets.csv").exists()
    lines = (out / "quarantine.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(x)["record"]["id"] for x in lines] == ids(50, 2)
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert report["passed"] is False and report["check_failures"] == {"created_at:timestamp": 2}


def test_missing_input_is_a_usage_error_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.json"

    code = main(["transform", str(missing), "--out", str(tmp_path / "out")])

    assert code == 2
    assert f"{missing}: no such file or directory" in capsys.readouterr().err
    assert not (tmp_path / "out" / "tweets.csv").exists()


def test_worker_processes_give_byte_identical_output(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(curate, "UNIT_BYTES", 2000)  # several units, so workers share them
    pages = [(f"raw/page-{i}.json", b) for i, b in enumerate(mixed_corpus() * 3)]
    outputs = []
    for workers in (1, 2):
        csv_out, q_out = io.StringIO(newline=""), io.StringIO(newline="")
        report = curate.transform_pages(pages, csv_out, q_out, workers=workers)
        outputs.append((csv_out.getvalue(), q_out.getvalue(), report))
    assert outputs[0] == outputs[1]
    assert outputs[1][2].duplicates > 10


def test_files_get_the_same_bytes_as_text_streams(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Into a file, rows go to its binary layer: duplicates across units and quarantined posts
    # (rows picked one by one out of a unit's block) must come out as through a text stream.
    monkeypatch.setattr(curate, "UNIT_BYTES", 2000)
    pages = [(f"raw/page-{i}.json", b) for i, b in enumerate(mixed_corpus() * 3)]
    text_csv, text_q = io.StringIO(newline=""), io.StringIO(newline="")
    curate.transform_pages(pages, text_csv, text_q, workers=1)
    for workers in (1, 2):
        csv_path, q_path = tmp_path / f"{workers}.csv", tmp_path / f"{workers}.jsonl"
        with (
            csv_path.open("w", encoding="utf-8", newline="") as csv_out,
            q_path.open("w", encoding="utf-8", newline="\n") as q_out,
        ):
            report = curate.transform_pages(pages, csv_out, q_out, workers=workers)

        assert csv_path.read_bytes() == text_csv.getvalue().encode("utf-8")
        assert q_path.read_text(encoding="utf-8") == text_q.getvalue()
        assert report.duplicates > 10 and report.quarantined > 5


def test_rows_after_a_non_ascii_row_are_cut_at_the_right_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A unit with a repeat and a rejected post is written row by row out of its UTF-8 block.
    monkeypatch.setattr(curate, "UNIT_BYTES", 1)  # one page a unit
    a, b, c, d, e = ids(0, 5)
    texts = {a: "first 😀", b: "plain", c: 'naïve ✓ مرحبا, "quoted"\nline', e: "after ✓"}
    pages = [
        ("p1", body(page([tweet(a, text=texts[a]), tweet(b, text=texts[b])]))),
        ("p2", body(page([tweet(c, text=texts[c]), tweet(a), tweet(d, lang="??")]))),
        ("p3", body(page([tweet(e, text=texts[e])]))),
    ]
    csv_path = tmp_path / "tweets.csv"
    with (
        csv_path.open("w", encoding="utf-8", newline="") as csv_out,
        (tmp_path / "q.jsonl").open("w", encoding="utf-8") as q_out,
    ):
        report = curate.transform_pages(pages, csv_out, q_out, workers=1)

    with csv_path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert (report.curated, report.duplicates, report.quarantined) == (4, 1, 1)
    assert {r["tweet_id"]: r["text"] for r in rows} == texts


def test_workers_below_one_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "page.json"
    src.write_bytes(body(page([tweet()])))

    code = main(["transform", str(src), "--out", str(tmp_path / "out"), "--workers", "0"])

    assert code == 2
    assert "--workers must be at least 1, not 0" in capsys.readouterr().err


# --- a killed run ---------------------------------------------------------------------------------
BENCH = Path(__file__).resolve().parents[2] / "bench"
# Lineage goes to the default file under --out: nothing from the test environment may redirect.
_ENV = {k: v for k, v in os.environ.items() if "OPENLINEAGE" not in k}


def _generated(path: Path, tweets: int) -> Path:
    """A sizeable realistic input, from the benchmark's generator (about 870 bytes a post)."""
    subprocess.run(
        [sys.executable, str(BENCH / "generate.py"), "--tweets", str(tweets), "--out", str(path)],
        check=True,
        timeout=300,
        capture_output=True,
    )
    return path


def _alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    """Those still running (a zombie has exited; whoever adopted it reaps it)."""
    alive = []
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            if proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(proc)
    return alive


def _events(out: Path) -> list[dict[str, Any]]:
    path = out / "lineage" / "events.jsonl"
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    return [json.loads(line) for line in text.splitlines()]


def _kill_midway(data: Path, out: Path) -> list[psutil.Process]:
    """Start a two-worker transform of ``data`` into ``out`` and SIGKILL it once its lineage process
    and both workers run (workers start once the outputs are open and the first unit is read);
    returns those children as they were."""
    cli = subprocess.Popen(
        [str(TWEETPIPE), "transform", str(data), "--out", str(out), "--workers", "2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=_ENV,
    )
    step = psutil.Process(cli.pid)
    children: list[psutil.Process] = []
    deadline = time.monotonic() + 120
    while len(children) < 3 and cli.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
        with contextlib.suppress(psutil.NoSuchProcess):
            children = step.children(recursive=True)
    assert len(children) >= 3 and cli.poll() is None, "the run ended before it could be killed"
    cli.kill()  # SIGKILL: no handler, no finally, no atexit
    cli.wait(30)
    return children


def test_a_killed_multi_worker_transform_leaves_no_process_and_reports_fail(
    tmp_path: Path,
) -> None:
    data = _generated(tmp_path / "posts.jsonl", 30_000)  # about 26 MiB: four units of work
    out = tmp_path / "out"
    children = _kill_midway(data, out)
    try:
        deadline = time.monotonic() + 30
        while _alive(children) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _alive(children) == []
    finally:
        for orphan in _alive(children):  # a failed run of this test leaves nothing behind
            orphan.kill()
    while len(_events(out)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    start, fail = _events(out)
    assert (start["eventType"], fail["eventType"]) == ("START", "FAIL")
    assert start["run"]["runId"] == fail["run"]["runId"]
    message = fail["run"]["facets"]["errorMessage"]["message"]
    assert message == "the run's process ended without reporting an outcome"


# --- outputs of one run replace those of the last together, or not at all -------------------------
_OUTPUTS = ("tweets.csv", "quarantine.jsonl", "report.json")


def _outputs(out: Path) -> dict[str, bytes]:
    return {name: (out / name).read_bytes() for name in _OUTPUTS if (out / name).exists()}


def _first_run(tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    """An --out directory holding a consistent set from a run with one quarantined post."""
    src = tmp_path / "first.json"
    src.write_bytes(body(page([tweet(t) for t in ids(0, 30)] + [tweet(ids(90, 1)[0], lang="??")])))
    out = tmp_path / "out"
    assert main(["transform", str(src), "--out", str(out)]) == 0
    old = _outputs(out)
    assert set(old) == set(_OUTPUTS) and old["quarantine.jsonl"]
    return out, old


def test_a_run_that_fails_midway_leaves_the_last_outputs_and_nothing_else(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out, old = _first_run(tmp_path)
    before = sorted(p.name for p in out.iterdir())
    src = tmp_path / "second.jsonl"
    src.write_bytes(b"\n".join(body(page([tweet(t)])) for t in ids(100, 20)) + b"\n")
    monkeypatch.setattr(curate, "UNIT_BYTES", 1)  # a unit per page: the failure comes midway
    merge = curate._OutputMerger.merge
    merged = [0]

    def failing_merge(self: curate._OutputMerger, unit: UnitResult) -> None:
        merged[0] += 1
        if merged[0] == 10:
            raise OSError("disk full")
        merge(self, unit)

    monkeypatch.setattr(curate._OutputMerger, "merge", failing_merge)

    with pytest.raises(OSError, match="disk full"):
        curate.transform_files([src], out)

    assert _outputs(out) == old
    assert sorted(p.name for p in out.iterdir()) == before  # no temporary file or directory


def test_a_killed_run_leaves_the_last_outputs_and_the_next_run_cleans_up(tmp_path: Path) -> None:
    out, old = _first_run(tmp_path)
    data = _generated(tmp_path / "posts.jsonl", 30_000)
    children = _kill_midway(data, out)
    for orphan in _alive(children):  # not this test's subject; never left behind
        orphan.kill()
    psutil.wait_procs(children, timeout=30)

    assert _outputs(out) == old

    src = tmp_path / "third.json"
    src.write_bytes(body(page([tweet(t) for t in ids(200, 3)])))
    assert main(["transform", str(src), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted([*_OUTPUTS, "lineage"])
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert (report["curated"], (out / "quarantine.jsonl").read_bytes()) == (3, b"")


def test_a_page_with_a_raw_lone_surrogate_is_curated_but_its_post(tmp_path: Path) -> None:
    # The filer's case: ED A0 80 (U+D800 as UTF-8) lands, json.loads reads it, msgspec refuses.
    posts = [tweet(t, text=f"post {t}") for t in ids(0, 25)]
    raw = body(page(posts)).replace(f"post {ids(3, 1)[0]}".encode(), b"x \xed\xa0\x80 y", 1)
    src = tmp_path / "raw" / "page-00001.json"
    src.parent.mkdir()
    src.write_bytes(raw)
    out = tmp_path / "out"

    proc = _tweetpipe(str(src.parent), "--out", str(out))

    assert proc.returncode == 0, proc.stderr
    with (out / "tweets.csv").open(encoding="utf-8", newline="") as handle:
        assert len(list(csv.DictReader(handle))) == 24
    (line,) = (out / "quarantine.jsonl").read_text(encoding="utf-8").splitlines()
    rejected = json.loads(line)
    assert rejected["record"]["id"] == ids(3, 1)[0]
    assert base64.b64decode(rejected["record_base64"]) in raw


def test_out_naming_a_file_is_one_usage_line(tmp_path: Path) -> None:
    (tmp_path / "p.json").write_bytes(body(page([tweet(t) for t in ids(0, 1)])))
    (tmp_path / "a-file").write_text("keep me")

    done = _tweetpipe(str(tmp_path / "p.json"), "--out", str(tmp_path / "a-file"))

    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"tweetpipe transform: error: --out {tmp_path / 'a-file'}: is not a directory; "
        "give a directory for the outputs"
    ]
    assert (tmp_path / "a-file").read_text() == "keep me"


def test_pages_that_cannot_be_parsed_are_explained_in_the_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Bytes no JSON reader takes as text (a JSON object with stray bytes in a string is read, and
    # only its bad posts are quarantined).
    (tmp_path / "latin1.json").write_bytes(b'{"data": [\xff\xfe]}')
    (tmp_path / "empty.json").write_bytes(b"")

    code = main(
        [
            "transform",
            str(tmp_path / "latin1.json"),
            str(tmp_path / "empty.json"),
            "--out",
            str(tmp_path / "out"),
        ]
    )

    assert code == 1
    summary = capsys.readouterr().err.splitlines()[0]
    # Why, in the line a user reads first, not only inside quarantine.jsonl.
    reasons = summary.partition("2 pages quarantined (")[2]
    assert "empty body: 1" in reasons and "not UTF-8" in reasons


def test_a_window_without_posts_says_nothing_was_curated_and_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "page-00001.json").write_bytes(body({"meta": {"result_count": 0}}))

    code = main(["transform", str(raw), "--out", str(tmp_path / "out")])

    assert code == 0
    err = capsys.readouterr().err
    assert f"0 posts curated for input {raw}: the API returned none" in err
