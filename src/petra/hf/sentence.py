"""petra's module for sentence-transformers folders saved by `petra.hf.save_pretrained`.

`modules.json` of such a folder names `PetraTransformer` as its first module, so plain
`SentenceTransformer(folder)` refuses it (a module from outside sentence-transformers needs
`trust_remote_code=True`) instead of loading a randomly initialised table; with the flag, or
through `petra.hf.from_pretrained`, the model loads through petra, bit-identically. Once
`materialize` has put a plain table back, the module is sentence-transformers' own again.
"""

from __future__ import annotations

from sentence_transformers.sentence_transformer.modules import Transformer

from petra.hf.io import load_model


class PetraTransformer(Transformer):
    """sentence-transformers' `Transformer` whose model is loaded by `petra.hf.load_model`."""

    def _load_model(self, model_name_or_path, transformer_task, config, backend, is_peft_model,
                    **model_kwargs):  # fmt: skip
        if backend != "torch" or is_peft_model:
            raise ValueError("a petra sentence model loads with the torch backend, without PEFT")
        return load_model(model_name_or_path)


def as_plain_transformer(module) -> None:
    """Make a loaded `PetraTransformer` sentence-transformers' own `Transformer` again (once
    `materialize` has put a plain table back, nothing is left for petra to load), so that the
    folder it saves loads in vanilla sentence-transformers."""
    if isinstance(module, PetraTransformer):
        module.__class__ = Transformer
