"""Packaging: the retrieval index of reference reports and the lineage record (model card) that
travel with the served models. The BentoML side (model store, `bentoml build`) is in serving/."""
