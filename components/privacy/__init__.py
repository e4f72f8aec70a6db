"""Privacy: PHI detection and redaction in report text (rules, no model), for the de-identification gate."""

from components.privacy.phi import DEFAULT_KINDS, KINDS, PhiSpan, detect_phi, redact

__all__ = ["DEFAULT_KINDS", "KINDS", "PhiSpan", "detect_phi", "redact"]
