"""OpenLineage for every step: facets (``facets``), dataset names (``datasets``), per-step lineage
built from the task payloads (``builders``), emission from the CLI (``emit``), and emission from a
process beside the command line's (``beside``).

Kept empty on purpose: importing :mod:`etl.lineage.beside` runs this file first, and the command
line's process must never load the OpenLineage client (``beside`` loads it in its child).
"""
