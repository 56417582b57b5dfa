"""Interchangeability, image-quality, agreement and MRMC statistics, and the report."""
