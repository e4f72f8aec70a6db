"""The Dagster code location: each asset runs its pipeline stage's `cxr` command through Pipes."""
