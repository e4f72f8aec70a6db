"""LLM2VEC4CXR / LLM2CLIP4CXR pipeline library: every stage as a plain function.

This package imports neither dagster nor bentoml; orchestration/ and serving/ call into it.
"""
