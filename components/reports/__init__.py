"""Radiology report text: sections, normalisation, abbreviations, style features and labels."""
