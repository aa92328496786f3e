"""``tweetpipe contracts docs``: pages render every part of a contract, escape it, carry the git
version history, and come out the same every time."""

from __future__ import annotations

import copy
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from etl.adapters.cli import main
from etl.contracts.model import CONTRACTS_DIR
from etl.storage.keys import CONTRACT_DOCS_PREFIX
from etl.tools.contract_docs import build_site, version_history
from tests.git_repo import git

if TYPE_CHECKING:
    import pytest

PAIRS = Path(__file__).parent / "contract_pairs"
BASE: dict[str, Any] = yaml.safe_load((PAIRS / "orders.odcs.yaml").read_text(encoding="utf-8"))
HOSTILE = '<script>alert("x")</script> & <b>bold</b>'


class _Tags(HTMLParser):
    """Collects start tags and text, to check structure without string matching on markup."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.links += [v for k, v in attrs if k == "href" and v]

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(path: Path) -> _Tags:
    parser = _Tags()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def _write(path: Path, doc: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def _versioned(version: str, **changes: Any) -> dict[str, Any]:
    doc = copy.deepcopy(BASE)
    doc.update(version=version, **changes)
    return doc


def test_site_has_an_index_a_stylesheet_and_a_page_per_contract(tmp_path: Path) -> None:
    files = build_site([PAIRS], tmp_path / "site")
    assert [f.name for f in files] == ["index.html", "style.css", "orders.html"]
    index = _parse(tmp_path / "site" / "index.html")
    assert "orders.html" in index.links
    assert "style.css" in index.links
    assert "script" not in index.tags


def test_page_shows_columns_types_constraints_rules_and_owners(tmp_path: Path) -> None:
    build_site([PAIRS], tmp_path)
    page = _parse(tmp_path / "orders.html")
    text = " ".join(page.text)
    for expected in (
        "order_id",  # columns
        "integer",  # types
        "int64",
        "^[0-9]{1,10}$",  # pattern
        "maximum",  # range
        "maxLength",
        "open",  # allowed values
        "shipped",
        "array of string",  # item type
        "duplicate_order_ids",  # dataset rule
        "mustBeGreaterOrEqualTo",
        "status_allowed_values",  # column rule
        "alice",  # owner
        "Orders of a test shop.",  # purpose
        "1.2.0",  # version
    ):
        assert expected in text, expected
    assert page.tags.count("table") >= 3


def test_every_contract_value_is_escaped(tmp_path: Path) -> None:
    doc = copy.deepcopy(BASE)
    doc["name"] = HOSTILE
    doc["description"]["purpose"] = HOSTILE
    doc["schema"][0]["properties"][0]["description"] = HOSTILE
    doc["schema"][0]["properties"][0]["logicalTypeOptions"]["pattern"] = '^[<>"&]$'
    doc["team"]["members"][0]["username"] = HOSTILE
    source = _write(tmp_path / "in" / "orders.odcs.yaml", doc)
    build_site([source], tmp_path / "site")
    for name in ("orders.html", "index.html"):
        raw = (tmp_path / "site" / name).read_text(encoding="utf-8")
        page = _parse(tmp_path / "site" / name)
        assert "<script>" not in raw
        assert "script" not in page.tags and "b" not in page.tags
        assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;b&gt;" in raw
        assert HOSTILE in "".join(page.text)  # shown to the reader exactly as written
    assert "^[&lt;&gt;&quot;&amp;]$" in (tmp_path / "site" / "orders.html").read_text()


def test_output_is_deterministic(tmp_path: Path) -> None:
    first = build_site([CONTRACTS_DIR], tmp_path / "a")
    second = build_site([CONTRACTS_DIR], tmp_path / "b")
    assert [f.name for f in first] == [f.name for f in second]
    for one, two in zip(first, second, strict=True):
        assert one.read_bytes() == two.read_bytes(), one.name


def test_the_repository_contracts_render(tmp_path: Path) -> None:
    files = build_site([], tmp_path)
    names = {f.name for f in files}
    assert {"tweets_curated.html", "x_api_v2_tweets_page.html"} <= names
    raw_page = " ".join(_parse(tmp_path / "x_api_v2_tweets_page.html").text)
    assert "data[].id" in raw_page  # nested properties are listed
    curated = " ".join(_parse(tmp_path / "tweets_curated.html").text)
    assert "tweet_id" in curated and "quarantined_share" in curated


def test_version_history_followsgit(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    contract = _write(repo / "contracts" / "orders.odcs.yaml", _versioned("1.0.0"))
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "orders 1.0.0")
    _write(contract, _versioned("1.1.0"))
    git(repo, "commit", "-q", "-am", "orders 1.1.0: <coupon> column")
    # a rename is followed: the history keeps the commits under the old name
    git(repo, "mv", "contracts/orders.odcs.yaml", "contracts/shop_orders.odcs.yaml")
    git(repo, "commit", "-q", "-m", "rename")
    moved = repo / "contracts" / "shop_orders.odcs.yaml"
    _write(moved, _versioned("2.0.0"))  # not committed

    history = version_history(moved)
    assert history is not None
    assert [(h.version, h.subject) for h in history] == [
        ("2.0.0", "uncommitted"),
        ("1.1.0", "rename"),
        ("1.1.0", "orders 1.1.0: <coupon> column"),
        ("1.0.0", "orders 1.0.0"),
    ]
    assert all(len(h.date) == 10 for h in history[1:])

    build_site([moved], tmp_path / "site")
    raw = (tmp_path / "site" / "shop_orders.html").read_text(encoding="utf-8")
    assert "orders 1.1.0: &lt;coupon&gt; column" in raw
    assert "working tree" in raw


def test_outside_git_the_page_says_there_is_no_history(tmp_path: Path) -> None:
    source = _write(tmp_path / "orders.odcs.yaml", BASE)
    assert version_history(source) is None
    build_site([source], tmp_path / "site")
    assert "no history" in (tmp_path / "site" / "orders.html").read_text(encoding="utf-8")


def test_cli_writes_the_site_and_publishes_to_a_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "store"
    argv = ["contracts", "docs", str(PAIRS), "--out", str(tmp_path / "site"), "--store", str(store)]
    assert main(argv) == 0
    published = sorted(p.name for p in (store / CONTRACT_DOCS_PREFIX).iterdir())
    assert published == ["index.html", "orders.html", "style.css"]
    assert (store / CONTRACT_DOCS_PREFIX / "orders.html").read_bytes() == (
        tmp_path / "site" / "orders.html"
    ).read_bytes()
    assert "published 3 file(s)" in capsys.readouterr().out


def test_cli_missing_contract_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing.odcs.yaml"
    assert main(["contracts", "docs", str(missing), "--out", str(tmp_path / "site")]) == 2
    assert str(missing) in capsys.readouterr().err
    assert not (tmp_path / "site").exists()
