"""Refinement of CAMs and probability maps: dense CRF (two backends), the dense-CRF loss; later PAMR, PAR, VARM."""
from .crf import dense_crf, dense_crf_batch, dense_crf_loss

__all__ = ["dense_crf", "dense_crf_batch", "dense_crf_loss"]
