"""``pipeline.yaml`` against its schema: unknown keys, types, values, YAML errors, odd files.

Every message names the file once, the line and the key path, and quotes nothing else from the
file: a DAG param may point the loader at any readable file.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from etl.config import Source, load_config
from etl.contracts.model import REPO_ROOT
from etl.errors import ConfigError

SECRET = "hunter2-do-not-print"


def _write(tmp_path: Path, body: str | bytes, name: str = "wrong.yaml") -> Path:
    path = tmp_path / name
    if isinstance(body, bytes):
        path.write_bytes(body)
    else:
        path.write_text(body, encoding="utf-8")
    return path


def _error(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as err:
        load_config(path)
    return err.value


def test_the_repository_config_is_valid() -> None:
    config = load_config(REPO_ROOT / "pipeline.yaml")

    assert [s.slug for s in config.sources][:3] == [
        "account-ada_builds",
        "account-tomas_ng",
        "account-quietriver",
    ]
    assert config.store_url == "tweetpipe-data" and config.api_base_url is None


def test_an_empty_file_is_an_empty_config(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, ""))

    assert config.sources == () and config.store_url is None


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "sources:\n  acounts: [nasa]\n",
            "wrong.yaml:2: sources.acounts: unknown key (did you mean 'accounts'?)",
        ),
        ("stores: /tmp/x\n", "wrong.yaml:1: stores: unknown key (did you mean 'store'?)"),
        (
            "api:\n  base_ur: http://127.0.0.1:8089\n",
            "wrong.yaml:2: api.base_ur: unknown key (did you mean 'base_url'?)",
        ),
        (
            "sources: {accounts: [a]}\nschedule: daily\n",
            "wrong.yaml:2: schedule: unknown key (valid keys: api, budget, prices, retention, sources, store)",
        ),
    ],
)
def test_unknown_keys_are_errors_with_file_line_and_a_suggestion(
    tmp_path: Path, body: str, message: str
) -> None:
    error = _error(_write(tmp_path, body))

    assert str(error) == str(tmp_path / message)
    assert str(error).count("wrong.yaml") == 1
    assert error.problems[0].line == int(message.split(":")[1])


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("sources: [a, b]\n", "wrong.yaml:1: sources: must be a mapping (or empty)"),
        ("sources:\n  accounts: nasa\n", "wrong.yaml:2: sources.accounts: must be a list"),
        (
            "sources:\n  accounts:\n    - nasa\n    - 17\n",
            "wrong.yaml:4: sources.accounts[1]: must be a string",
        ),
        (
            'sources:\n  accounts:\n    - nasa\n    - "hostile\\n"\n',
            "wrong.yaml:4: sources.accounts[1]: is not a valid X username",
        ),
        (
            "sources:\n  queries:\n    - ''\n",
            "wrong.yaml:3: sources.queries[0]: must be a non-empty query",
        ),
        ("store: 42\n", "wrong.yaml:1: store: must be a string"),
        ("api: {base_url: 'ftp://h'}\n", "wrong.yaml:1: api.base_url: must be an http(s) URL"),
        ("- a\n- b\n", "wrong.yaml:1: must be a mapping"),
        ("a: 1\na: 2\n", "wrong.yaml:2: a: given twice"),
        ("x: &a [1]\ny: *a\n", "anchors and aliases are not supported"),
    ],
)
def test_wrong_shapes_and_values_name_the_key_path(tmp_path: Path, body: str, message: str) -> None:
    error = _error(_write(tmp_path, body))

    assert str(error).startswith(str(tmp_path / "wrong.yaml"))
    assert message in str(error)


def test_every_problem_is_kept_as_data_and_counted(tmp_path: Path) -> None:
    error = _error(_write(tmp_path, "acounts: [a]\nsources: {querys: [b]}\nstoer: x\n"))

    assert [(p.line, p.key) for p in error.problems] == [
        (1, "acounts"),
        (2, "sources.querys"),
        (3, "stoer"),
    ]
    assert str(error).endswith("(and 2 more)")


@pytest.mark.parametrize(
    "body",
    [
        f"password: {SECRET}\n",
        f"sources:\n  accounts: ['{SECRET}']\n",
        f"sources:\n  accounts: [ok]\n  token: {SECRET}\n",
        f"store: 's3://AKIAEXAMPLE:{SECRET}@bucket/p'\n",
        f"api: {{base_url: 'http://user:{SECRET}@127.0.0.1'}}\n",
        f"user: admin\npassword: '{SECRET}\n",  # unterminated quote: PyYAML would quote the line
        f"key: value\n{SECRET}: [\n",
        f"{SECRET}\n",
        f"k: v\n\t{SECRET}: 1\n",
        f"k: !!python/object:os.system '{SECRET}'\n",
    ],
)
def test_no_message_quotes_the_file(tmp_path: Path, body: str) -> None:
    error = _error(_write(tmp_path, body))

    assert SECRET not in str(error)
    assert str(error).startswith(f"{tmp_path / 'wrong.yaml'}:")


def test_yaml_errors_give_line_column_and_a_generic_problem(tmp_path: Path) -> None:
    error = _error(_write(tmp_path, f"sources:\n  accounts: [a\nsecret: {SECRET}\n"))

    problem = error.problems[0]
    assert problem.line == 3 and problem.column == 7  # where PyYAML notices the open list
    assert str(error) == (
        f"{tmp_path / 'wrong.yaml'}:{problem.line}:{problem.column}: "
        "not valid YAML (the structure is broken)"
    )


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    import os
    import threading

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # opening a FIFO for reading blocks until a writer comes
    errors: list[ConfigError] = []
    reader = threading.Thread(target=lambda: errors.append(_error(fifo)), daemon=True)

    reader.start()
    reader.join(timeout=60)  # a bound, so a regression fails instead of hanging the suite

    assert not reader.is_alive(), "reading the config blocked on a FIFO"
    assert [str(e) for e in errors] == [f"{fifo}: not a regular file"]


def test_files_that_are_not_configs_are_refused_unread(tmp_path: Path) -> None:
    huge = _write(tmp_path, b"# " + b"x" * (1 << 20) + b"\n", "huge.yaml")

    assert "larger than 1048576 bytes" in str(_error(huge))
    assert str(_error(Path("/dev/zero"))) == "/dev/zero: not a regular file"
    assert str(_error(tmp_path)).endswith("cannot be read (Is a directory)")
    assert str(_error(_write(tmp_path, b"a: \xff\xfe\n"))).endswith("wrong.yaml:1: not UTF-8 text")


@pytest.mark.parametrize("name", ["hostile\n", "a\n", "nasa\r", "x" * 16, "@nasa", "na sa", ""])
def test_usernames_match_whole(name: str) -> None:
    with pytest.raises(ConfigError, match="is not a valid X username"):
        Source("account", name)


# --- retention: ----------------------------------------------------------------------------------
def test_retention_defaults_keep_raw_and_docs_forever(tmp_path: Path) -> None:
    from etl.config import RetentionPolicy

    policy = load_config(_write(tmp_path, "sources: {}\n")).retention

    assert policy == RetentionPolicy()
    assert (policy.raw_days, policy.docs_pages_days, policy.docs_results_days) == (None,) * 3


def test_retention_values_are_read(tmp_path: Path) -> None:
    body = (
        "retention:\n  raw_days: 400\n  staging_days: null\n  grace_hours: 2\n"
        "  docs_pages_days: 90\n  docs_results_days: 365\n"
    )
    policy = load_config(_write(tmp_path, body)).retention

    assert (policy.raw_days, policy.staging_days, policy.grace_hours) == (400, None, 2)
    assert (policy.docs_pages_days, policy.docs_results_days) == (90, 365)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("retention:\n  raw_days: -1\n", "retention.raw_days: must be a whole number from 0 to"),
        ("retention:\n  raw_days: '400'\n", "retention.raw_days: must be a whole number"),
        ("retention:\n  raw_day: 400\n", "unknown key (did you mean 'raw_days'?)"),
        (
            "retention:\n  docs_pages_days: 90\n  docs_results_days: 30\n",
            "retention.docs_results_days: docs_results_days must be at least docs_pages_days",
        ),
        ("retention:\n  docs_results_days: 30\n", "needs docs_pages_days set"),
    ],
)
def test_bad_retention_names_the_key(tmp_path: Path, body: str, message: str) -> None:
    assert message in str(_error(_write(tmp_path, body)))
