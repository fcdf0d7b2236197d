"""petra embeddings inside pretrained Hugging Face models (`pip install 'petra[hf]'`).

    from petra.hf import replace_embeddings, save_pretrained, from_pretrained, materialize
    report = replace_embeddings(model, "kronecker", tokenizer, head="tied")
    save_pretrained(model, "out", tokenizer)     # petra.safetensors + petra.json sidecar
    model = from_pretrained("out")               # bit-identical
    materialize(model)                           # back to nn.Embedding, for vanilla export

See `petra.hf.swap` (the swap, tied heads, resizing) and `petra.hf.io` (save, load, export).
"""

from petra.hf.io import (
    HFModelFiles,
    from_pretrained,
    load_model,
    materialize,
    read_sidecar,
    save_pretrained,
)
from petra.hf.swap import HEADS, SwapReport, TableHead, replace_embeddings, unwrap_embedding

__all__ = [
    "HEADS",
    "HFModelFiles",
    "SwapReport",
    "TableHead",
    "from_pretrained",
    "load_model",
    "materialize",
    "read_sidecar",
    "replace_embeddings",
    "save_pretrained",
    "unwrap_embedding",
]
