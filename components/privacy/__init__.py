"""Privacy: PHI detection and redaction in report text (rules, no model), for the de-identification gate."""

from components.privacy.phi import KINDS, PhiSpan, detect_phi, redact

__all__ = ["KINDS", "PhiSpan", "detect_phi", "redact"]
