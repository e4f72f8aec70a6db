"""The report styles the synthetic writer knows (a leaf module: params validates against it)."""

STYLES: tuple[str, ...] = ("full", "impression_only", "abbreviated", "terse_normal", "numbered")
