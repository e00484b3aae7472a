"""Refinement of CAMs and probability maps: dense CRF (two backends), CRF labels, the dense-CRF loss, PSA's
pixel affinities and random walk (:mod:`.affinity`); later PAMR, PAR, VARM."""
from .crf import CRFEnergy, DenseCRF, crf_label, dense_crf, dense_crf_batch, dense_crf_loss, dense_crf_runs

__all__ = ["CRFEnergy", "DenseCRF", "crf_label", "dense_crf", "dense_crf_batch", "dense_crf_loss", "dense_crf_runs"]
