"""The transform step: raw X API v2 response pages to the curated CSV, gated by the contract.

The public API is in :mod:`etl.steps.transform.curate` (``transform_pages``, ``transform_files``,
``TransformReport``, ``input_files``, ``auto_workers``). This package module imports nothing, so
``etl.steps.transform.outdir`` loads without msgspec, numpy or pandas.

The reference path, readable on its own:

* ``pages``: a body to response documents with ``json`` (encodings, JSON Lines, problems);
* ``values``: one source value to its cell per the contract (JSON types, times, ``&amp;``);
* ``columns``: posts to contract columns (paths, text, entities, authors);
* ``duplicates``: the first occurrence of a tweet id wins;
* ``gate``: the Pandera gate and its reasons per row;
* ``lines``: quarantine lines, and CSV rows as ``csv.writer`` writes them;
* ``unit``: one unit of pages to its result, built from swappable ``Parts``;
* ``report``: the run's report and its fatal checks.

Fast parts, each giving the same bytes as the reference part it replaces (tested):

* ``fast``: the msgspec page decoder and the whole-column operations;
* ``csv_lines``: CSV lines built column by column;
* ``uint64_ids``: ids already seen as a sorted uint64 array;
* ``pool``: worker processes (dying with their parent) and garbage-collector tuning.

And ``outdir``: replacing a run's outputs together, or not at all.
"""
