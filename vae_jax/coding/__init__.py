"""Lossless coding with a trained model: bits-back coding (and, next, the standard codecs)."""
