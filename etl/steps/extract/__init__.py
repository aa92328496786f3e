"""Extraction: posts from the X API v2 through tweepy, landed byte-for-byte in ``raw/``.

The modules, from the entry points down:

- :mod:`~etl.steps.extract.run`: :func:`~etl.steps.extract.run.make_client`,
  :func:`~etl.steps.extract.run.extract_source` (one source over one window),
  :func:`~etl.steps.extract.run.extract_sources` (several, each failing alone), their results;
- :mod:`~etl.steps.extract.paging`: one source's run (resolve the account, paginate, resume a
  window an earlier call left unfinished, detect a pagination that loops);
- :mod:`~etl.steps.extract.manifest`: the window's manifest, written after the last page;
- :mod:`~etl.steps.extract.client`: the X API client (one request with rate limits and retries);
- :mod:`~etl.steps.extract.session`: the HTTP session (base URL, timeouts, bodies read within a
  size limit as they stream in);
- :mod:`~etl.steps.extract.land`: the keys of ``raw/`` and ``state/``, landing and watermarks.

This package module imports nothing, so ``import etl.steps.extract.land`` (``tweetpipe state
reset``) does not load tweepy or requests.
"""
