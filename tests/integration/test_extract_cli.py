"""``tweetpipe extract`` end to end: emulator on loopback, local and S3 stores, then transform."""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from etl.adapters.cli import main
from etl.resources import default_config
from etl.storage.keys import is_page_key
from etl.storage.store import LocalStore, open_store
from tests.integration.conftest import EMULATOR_TOKEN

if TYPE_CHECKING:
    from pathlib import Path

    from tests.integration.conftest import S3Endpoint

WINDOW = ["--start", "2023-01-01T00:00:00Z", "--end", "2023-01-15"]


def test_extract_with_the_config_then_transform_reads_raw(
    emulator: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store_dir = tmp_path / "store"

    code = main(
        [
            "extract",
            "--config",
            str(default_config()),
            "--store",
            str(store_dir),
            *WINDOW,
        ]
    )

    out, err = capsys.readouterr()
    assert code == 0, out + err
    store = LocalStore(store_dir)
    pages = [k for k in store.list("raw/") if is_page_key(k)]
    posts = {t["id"] for k in pages for t in json.loads(store.get(k)).get("data", [])}
    requests_sent = len(emulator.request_log)
    assert f"total: {requests_sent} requests (3 user lookups, 0 retries), {len(pages)} pages" in out
    for slug in ("account-ada_builds", "account-tomas_ng", "account-quietriver"):
        assert f"\n{slug}  " in out and store.exists(f"state/watermarks/{slug}.json")
    assert out.count(" landed ") == 5 and "FAILED" not in out
    assert "posts/s" not in err  # no progress bar when stderr is not a terminal
    assert EMULATOR_TOKEN not in out + err

    rerun = main(
        [
            "extract",
            "--config",
            str(default_config()),
            "--store",
            str(store_dir),
            *WINDOW,
        ]
    )
    rerun_out = capsys.readouterr().out
    assert rerun == 0 and len(emulator.request_log) == requests_sent
    assert "5 source(s) skipped: their window was already complete" in rerun_out

    code = main(["transform", str(store_dir / "raw"), "--out", str(tmp_path / "curated")])

    assert code == 0, capsys.readouterr()
    report = json.loads((tmp_path / "curated" / "report.json").read_text())
    assert report["pages"] == len(pages) and report["pages_quarantined"] == 0
    with (tmp_path / "curated" / "tweets.csv").open(encoding="utf-8") as fh:
        curated = {row["tweet_id"] for row in csv.DictReader(fh)}
    assert curated <= posts
    assert report["tweets_in"] == report["curated"] + report["quarantined"] + report["duplicates"]
    assert len(curated) + report["quarantined"] == len(posts)


def test_a_failing_source_fails_alone_with_exit_1_into_s3(
    emulator: Any, moto_server: S3Endpoint, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["extract", "--account", "ghost_account", "--account", "@nadia_k", "--query", "data"]

    code = main([*argv, "--store", moto_server.store_url, *WINDOW])

    out, err = capsys.readouterr()
    assert code == 1
    assert "FAILED @ghost_account failed: user lookup of @ghost_account found no user" in out
    assert "account-nadia_k" in out and out.count(" landed ") == 2
    store = open_store(moto_server.store_url)
    manifests = [k for k in store.list("raw/") if k.endswith("/_manifest.json")]
    assert len(manifests) == 2 and not any("ghost" in k for k in store.list(""))
    assert EMULATOR_TOKEN not in out + err


# --- settings: where the store comes from, and one line when it cannot be used ------------------
AWS_SECRET = "wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY"


def _extract(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["extract", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_config_names_the_store_so_no_flag_is_needed(
    emulator: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("TWEETPIPE_STORE", raising=False)
    config = tmp_path / "pipeline.yaml"
    config.write_text(f"store: {tmp_path / 'from-config'}\nsources: {{accounts: [ada_builds]}}\n")

    code, out, err = _extract(["--config", str(config), *WINDOW], capsys)

    assert code == 0, out + err
    assert LocalStore(tmp_path / "from-config").list("raw/")
    # The variable wins over the file, the flag over both.
    monkeypatch.setenv("TWEETPIPE_STORE", str(tmp_path / "from-env"))
    assert _extract(["--config", str(config), *WINDOW], capsys)[0] == 0
    assert LocalStore(tmp_path / "from-env").list("raw/")
    flag = ["--store", str(tmp_path / "from-flag")]
    assert _extract(["--config", str(config), *flag, *WINDOW], capsys)[0] == 0
    assert LocalStore(tmp_path / "from-flag").list("raw/")


def test_no_store_anywhere_is_one_usage_line(
    emulator: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("TWEETPIPE_STORE", raising=False)

    code, out, err = _extract(["--account", "ada_builds"], capsys)

    assert (code, out) == (2, "")
    assert err.splitlines() == [
        "tweetpipe extract: error: no store: give --store, set TWEETPIPE_STORE, or name one "
        "under store: in --config FILE"
    ]


def test_a_store_url_with_credentials_is_refused_from_every_setting(
    emulator: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = f"s3://AKIAEXAMPLE:{AWS_SECRET}@bucket/p"
    config = tmp_path / "pipeline.yaml"
    config.write_text(f"store: '{url}'\nsources: {{accounts: [ada_builds]}}\n")
    monkeypatch.delenv("TWEETPIPE_STORE", raising=False)

    flag = _extract(["--account", "ada_builds", "--store", url], capsys)
    from_config = _extract(["--config", str(config)], capsys)
    monkeypatch.setenv("TWEETPIPE_STORE", url)
    from_env = _extract(["--account", "ada_builds"], capsys)

    for (code, out, err), where in (
        (flag, "--store: "),
        (from_config, f"{config}:1: store: "),
        (from_env, "TWEETPIPE_STORE: "),
    ):
        assert code == 2 and out == ""
        assert err.splitlines() == [
            f"tweetpipe extract: error: {where}the store URL carries credentials "
            "(user:password@): remove them; S3 credentials come from the AWS credential chain "
            "(AWS_* variables, a profile, a role) or the Airflow connection named by aws_conn_id"
        ]
        assert AWS_SECRET not in err and "AKIAEXAMPLE" not in err
    assert emulator.request_log == []


def test_the_console_script_prints_no_traceback_and_no_secret(tmp_path: Path) -> None:
    url = f"s3://AKIAEXAMPLE:{AWS_SECRET}@bucket/p"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TWEETPIPE_"))}
    env["X_BEARER_TOKEN"] = EMULATOR_TOKEN
    env["AWS_EC2_METADATA_DISABLED"] = "true"  # whatever happens, boto3 stays on this machine

    done = subprocess.run(
        [sys.executable, "-m", "etl", "extract", "--account", "a", "--store", url],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
        cwd=tmp_path,
    )

    assert done.returncode == 2 and done.stdout == ""
    assert len(done.stderr.splitlines()) == 1 and "carries credentials" in done.stderr
    assert AWS_SECRET not in done.stderr and "Traceback" not in done.stderr


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _no_aws_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    # No shared files, and no instance metadata lookup (it would leave loopback).
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", raising=False)
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", raising=False)
    # boto3's default session keeps the credentials it found for earlier tests: start afresh,
    # as a new process would.
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)


@pytest.mark.parametrize(
    "case", ["proc", "a-file", "no-credentials", "unreachable", "no-bucket", "s3-fine"]
)
def test_an_unusable_store_is_one_line_naming_it(
    case: str,
    emulator: Any,
    moto_server: S3Endpoint,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "a-file").write_text("x")
    store, message = {
        "proc": ("/proc/x", "store /proc/x cannot be created (No such file or directory)"),
        "a-file": (str(tmp_path / "a-file"), f"store {tmp_path / 'a-file'} is not a directory"),
        "no-credentials": (
            moto_server.store_url,
            f"store {moto_server.store_url}: no AWS credentials found: set AWS_ACCESS_KEY_ID",
        ),
        "unreachable": ("s3://some-bucket/p", "store s3://some-bucket/p: the S3 endpoint http"),
        "no-bucket": (
            "s3://no-such-bucket-here/p",
            "store s3://no-such-bucket-here/p: the bucket does not exist",
        ),
        "s3-fine": (moto_server.store_url, ""),
    }[case]
    if case == "no-credentials":
        _no_aws_credentials(monkeypatch, tmp_path)
    if case == "unreachable":
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{_closed_port()}")

    code, out, err = _extract(["--account", "ada_builds", "--store", store, *WINDOW], capsys)

    if case == "s3-fine":
        assert code == 0, err
        return
    assert (code, out) == (2, "")
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"tweetpipe extract: error: --store: {message}"), err
    assert emulator.request_log == []  # nothing fetched for a store that cannot take it


def test_the_env_file_is_read_below_the_environment(emulator: Any, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "# placeholders are replaced by real values here\n"
        f"X_BEARER_TOKEN={EMULATOR_TOKEN}\n"
        f"X_API_BASE_URL={emulator.base_url}\n"
        "TWEETPIPE_STORE=from-dotenv\n"
    )
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("X_BEARER_TOKEN", "X_API_BASE_URL", "TWEETPIPE_STORE")
    }
    argv = [sys.executable, "-m", "etl", "extract", "--account", "ada_builds", *WINDOW]

    def tweetpipe(extra_env: dict[str, str], *extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*argv, *extra],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env={**env, **extra_env},
            cwd=tmp_path,
        )

    from_file = tweetpipe({})
    from_env = tweetpipe({"TWEETPIPE_STORE": "from-env"})
    from_flag = tweetpipe({"TWEETPIPE_STORE": "from-env"}, "--store", "from-flag")

    for done in (from_file, from_env, from_flag):
        assert done.returncode == 0, done.stderr
        assert EMULATOR_TOKEN not in done.stdout + done.stderr
    for name in ("from-dotenv", "from-env", "from-flag"):
        assert LocalStore(tmp_path / name).list("raw/"), name


def test_a_misspelt_config_key_is_one_usage_line_naming_file_and_line(
    emulator: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "wrong.yaml"
    config.write_text("store: out\nsources:\n  acounts: [ada_builds]\n  queries: [python]\n")

    code, out, err = _extract(["--config", str(config), *WINDOW], capsys)

    assert (code, out) == (2, "")
    assert err.splitlines() == [
        f"tweetpipe extract: error: {config}:3: sources.acounts: unknown key "
        "(did you mean 'accounts'?)"
    ]
    assert emulator.request_log == [] and not (tmp_path / "out").exists()
