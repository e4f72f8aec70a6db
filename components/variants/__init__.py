"""Report variants: clinically equivalent rewrites (positives) and single-error rewrites (hard negatives)."""
