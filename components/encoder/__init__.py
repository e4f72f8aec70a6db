"""LLM2VEC4CXR: a decoder LM turned into a bidirectional, report-robust text encoder (and baselines)."""
