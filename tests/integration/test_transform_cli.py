"""``tweetpipe transform`` as a user runs it: a real process, files in, exit code and files out."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from etl import transform
from etl.cli import main
from tests.pages import body, ids, mixed_corpus, page, tweet

if TYPE_CHECKING:
    import pytest

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
    monkeypatch.setattr(transform, "UNIT_BYTES", 2000)  # several units, so workers share them
    pages = [(f"raw/page-{i}.json", b) for i, b in enumerate(mixed_corpus() * 3)]
    outputs = []
    for workers in (1, 2):
        csv_out, q_out = io.StringIO(newline=""), io.StringIO(newline="")
        report = transform.transform_pages(pages, csv_out, q_out, workers=workers)
        outputs.append((csv_out.getvalue(), q_out.getvalue(), report))
    assert outputs[0] == outputs[1]
    assert outputs[1][2].duplicates > 10


def test_files_get_the_same_bytes_as_text_streams(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Into a file, rows go to its binary layer: duplicates across units and quarantined posts
    # (rows picked one by one out of a unit's block) must come out as through a text stream.
    monkeypatch.setattr(transform, "UNIT_BYTES", 2000)
    pages = [(f"raw/page-{i}.json", b) for i, b in enumerate(mixed_corpus() * 3)]
    text_csv, text_q = io.StringIO(newline=""), io.StringIO(newline="")
    transform.transform_pages(pages, text_csv, text_q, workers=1)
    for workers in (1, 2):
        csv_path, q_path = tmp_path / f"{workers}.csv", tmp_path / f"{workers}.jsonl"
        with (
            csv_path.open("w", encoding="utf-8", newline="") as csv_out,
            q_path.open("w", encoding="utf-8", newline="\n") as q_out,
        ):
            report = transform.transform_pages(pages, csv_out, q_out, workers=workers)

        assert csv_path.read_bytes() == text_csv.getvalue().encode("utf-8")
        assert q_path.read_text(encoding="utf-8") == text_q.getvalue()
        assert report.duplicates > 10 and report.quarantined > 5


def test_rows_after_a_non_ascii_row_are_cut_at_the_right_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A unit with a repeat and a rejected post is written row by row out of its UTF-8 block.
    monkeypatch.setattr(transform, "UNIT_BYTES", 1)  # one page a unit
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
        report = transform.transform_pages(pages, csv_out, q_out, workers=1)

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
    (tmp_path / "latin1.json").write_bytes('{"data": "caf\xe9"}'.encode("latin-1"))
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
