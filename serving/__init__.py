"""BentoML service for embedding, retrieval and zero-shot endpoints (arrives with the serving stage)."""
