"""Probes of trained (or fresh) models: spelling robustness, forced out-of-vocabulary
generation, embedding geometry (typographic clustering included), norm drift."""

from petra.probes.generate import forced_oov_generation
from petra.probes.geometry import probe_geometry, typographic_pairs, typographic_similarity
from petra.probes.norms import norm_series, plot_norms
from petra.probes.spelling import (
    PromptPair,
    default_pairs,
    format_summary,
    load_pairs,
    probe_spelling,
)

__all__ = [
    "PromptPair",
    "default_pairs",
    "forced_oov_generation",
    "format_summary",
    "load_pairs",
    "norm_series",
    "plot_norms",
    "probe_geometry",
    "probe_spelling",
    "typographic_pairs",
    "typographic_similarity",
]
