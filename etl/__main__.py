"""``python -m etl``: the ``tweetpipe`` command line."""

from __future__ import annotations

from etl.adapters.cli import run

if __name__ == "__main__":
    run()
