"""Transformer models with pluggable embeddings, built from a `ModelConfig`.

```python
config = ModelConfig(model="causal_lm", vocab_size=50257, dim=256,
                     embedding={"kind": "fourier", "refine": "linear"})
model = build_model(config)
model.save_pretrained("runs/lm"); model = load_pretrained("runs/lm")
```
"""

from petra.models.base import PetraModel, masked_mean
from petra.models.build import MODEL_CLASSES, build_model, load_pretrained
from petra.models.causal_lm import CausalLM, top_p_filter
from petra.models.config import ModelConfig
from petra.models.encoder import Encoder, SentenceEncoder, SequenceClassifier

__all__ = [
    "MODEL_CLASSES",
    "CausalLM",
    "Encoder",
    "ModelConfig",
    "PetraModel",
    "SentenceEncoder",
    "SequenceClassifier",
    "build_model",
    "load_pretrained",
    "masked_mean",
    "top_p_filter",
]
