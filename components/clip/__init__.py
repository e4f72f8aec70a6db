"""LLM2CLIP4CXR: image-report contrastive training (open_clip vision tower + a report encoder)."""
