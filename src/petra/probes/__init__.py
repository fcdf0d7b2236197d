"""Probes of trained (or fresh) models: spelling robustness, forced out-of-vocabulary
generation, embedding geometry (the Kronecker paper's typographic retrieval included), norm
drift."""

from petra.probes.generate import forced_oov_generation
from petra.probes.geometry import probe_geometry
from petra.probes.norms import norm_series, plot_norms
from petra.probes.retrieval import format_retrieval, probe_space, retrieval_probe
from petra.probes.spelling import (
    PromptPair,
    brown_pairs,
    compare_categories,
    format_summary,
    load_pairs,
    pair_set,
    paper_pairs,
    probe_spelling,
)

__all__ = [
    "PromptPair",
    "brown_pairs",
    "compare_categories",
    "forced_oov_generation",
    "format_retrieval",
    "format_summary",
    "load_pairs",
    "norm_series",
    "pair_set",
    "paper_pairs",
    "plot_norms",
    "probe_geometry",
    "probe_spelling",
    "probe_space",
    "retrieval_probe",
]
