"""Refinement of CAMs and probability maps: dense CRF (and later PAMR / PAR / VARM, affinity)."""
from .crf import dense_crf, dense_crf_batch

__all__ = ["dense_crf", "dense_crf_batch"]
