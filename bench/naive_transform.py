"""The baseline: raw pages to CSV the way tutorials do it (json.load + pandas.json_normalize).

Every response is loaded, all posts are flattened in one ``json_normalize`` call, the authors are
joined from ``includes.users`` and the frame goes out with ``to_csv``. No gate, no quarantine, no
streaming: the whole input sits in memory.

    python bench/naive_transform.py INPUT.jsonl OUT.csv
"""

from __future__ import annotations

import json
import sys

import pandas as pd


def main(src: str, dst: str) -> None:
    with open(src, encoding="utf-8") as handle:
        pages = [json.loads(line) for line in handle if line.strip()]
    tweets = [t for page in pages for t in page.get("data", [])]
    users = [u for page in pages for u in page.get("includes", {}).get("users", [])]
    frame = pd.json_normalize(tweets)
    authors = pd.json_normalize(users)[["id", "username", "name"]].drop_duplicates("id")
    authors.columns = ["author_id", "author_username", "author_name"]
    frame = frame.merge(authors, on="author_id", how="left")
    frame.to_csv(dst, index=False)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
