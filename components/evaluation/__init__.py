"""Evaluation: retrieval, zero-shot classification, text robustness, clinical alignment and the ranking protocol.

Every metric is a pure function of similarity matrices, label matrices or rankings (numpy), so each can
be checked against hand-computed values; `stage.py` feeds them the pipeline's models and data.
"""
