"""An embedding kind of your own, in one file: a random sign code read by a trained map.

    python examples/own_kind.py                  # against the learned table, demo preset
    python examples/own_kind.py --budget 16k --steps 100

    E(id) = W s(id) / sqrt(r)      s(id) in {-1, +1}^r, W: d x r, trained

s(id) is r seeded hash bits of the id (`petra.embeddings.hashing.UniversalHash` into 2
buckets): nothing is stored per token, and the r d entries of W are the only parameters.
The table it gives has rank at most min(r, d): its rows lie in a learned space, at
coordinates fixed by the code. Two ids share a code, so a row, with chance 2^-r: about
V^2 / 2^(r+1) pairs of a vocabulary do (some 19,000 of GPT-2's 50,257 ids at r = 16, none
to speak of at r = 64). With W ~ N(0, 0.02^2), each row's entries start with a learned
table's std, 0.02.

`@register` is all that joins the kind to petra: once this file is imported, its name works
wherever a kind's does (`build_embedding`, `size_for_budget`, model settings such as
`--set model.embedding=random-code`, `petra compare`, saving and loading a model); on the
command line, run from this folder, `petra --import own_kind COMMAND ...` imports it first.
To have it in every process without an import, name it in your package's
`pyproject.toml`:

    [project.entry-points."petra.embeddings"]
    random-code = "own_kind:RandomCodeEmbedding"

Run as a script, it holds the kind to the embedding contract (`check_kind`), then sizes the
code and ALBERT's factorized table to one budget and trains a small LM with each (`petra
compare`'s Python API), printing the table of their results.
"""

import argparse
import math
from functools import partial

from torch import Tensor, nn

from petra.embeddings import TokenEmbedding, register
from petra.embeddings.base import (
    Knob,
    check_count,
    check_init_std,
    draw_,
    fixed_seed,
    init_generator,
)
from petra.embeddings.hashing import UniversalHash


@register
class RandomCodeEmbedding(TokenEmbedding):
    """r seeded sign bits of each id, mapped to d by a trained matrix: E(id) = W s(id) / sqrt(r).

    Args:
        vocab_size: V, the number of token ids.
        dim: d, the width of each embedding.
        bits: r, the code's length (and the rank of the table).
        seed: when given, draws the code and W (two builds with one seed are equal); None
            (the default) draws W from the global RNG, as a torch module's, and the code
            from seed 0.
        padding_idx: an id whose output is the zero vector, or None.
        init_std: the standard deviation of W's normal initialization.
    """

    kind = "random-code"  # its name in settings and on the command line
    computes_rows = True  # rows are computed: once per distinct id, a table in evaluation
    budget_knob = ("bits",)  # the option a budget of parameters sets
    report_layouts = (("random-code, r = 64", {}),)  # its rows of `petra params`

    @classmethod
    def params_for(cls, vocab_size: int, dim: int, **options) -> int:
        """r d: W alone (the code is computed)."""
        return cls.option(options, "bits") * dim

    @classmethod
    def budget_layouts(cls, vocab_size: int, dim: int, budget: int, **options) -> list[Knob]:
        """Any code length r, r d parameters."""
        return [Knob(range(1, budget // dim + 2), lambda r: r * dim, lambda r: {"bits": r})]

    def __init__(
        self,
        vocab_size: int,
        dim: int,
        *,
        bits: int = 64,
        seed: int | None = None,
        padding_idx: int | None = None,
        init_std: float = 0.02,
    ):
        super().__init__(vocab_size, dim, padding_idx)
        check_count("bits", bits)
        check_init_std(init_std)
        self.code = UniversalHash(bits, 2, fixed_seed(seed))  # buffers: saved with W
        self.map = nn.Linear(bits, dim, bias=False)
        self.seed, self.init_std = seed, init_std
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """W ~ N(0, init_std^2), from `seed` when it is given (else the global RNG)."""
        init = partial(nn.init.normal_, std=self.init_std)
        draw_(self.map.weight, init, init_generator(self.seed))

    def features(self, ids: Tensor) -> Tensor:
        """s(id) / sqrt(r): (N,) ids -> (N, r)."""
        signs = self.code(ids).to(self.map.weight.dtype) * 2 - 1  # in {-1, +1}
        return signs / math.sqrt(self.code.num_hashes)

    def _embed(self, ids: Tensor) -> Tensor:  # (N,) ids, already checked -> (N, d)
        return self.map(self.features(ids))

    # -- optional: what lets a Hugging Face swap (`petra compress`) start it from a table

    @classmethod
    def has_least_squares_map(cls, options: dict) -> bool:
        return True

    def least_squares_map(self):
        """E = W f(id) with fixed features f: the least-squares start fits W to the table."""
        return self.features, self.map.weight.copy_

    def _scale(self, factor: float) -> None:  # E -> factor E, exactly
        self.map.weight.mul_(factor)

    def trained_matrix(self) -> Tensor:  # what `weight_norms` follows in training
        return self.map.weight


def main(argv=None) -> None:
    from petra.compare import Budget, compare, format_table
    from petra.embeddings import check_kind, parse_budget

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="demo")
    parser.add_argument("--budget", default="65k", help="embedding parameters, e.g. 65k")
    parser.add_argument("--steps", type=int, default=None, help="training steps (the preset's)")
    parser.add_argument("--out", default="runs/own-kind")
    args = parser.parse_args(argv)

    checks = check_kind(RandomCodeEmbedding)  # raises ContractError, naming what fails
    print(f"random-code keeps the embedding contract ({len(checks)} checks)")
    summary = compare(
        "lm",
        kinds=["learned", "random-code"],
        backbones=["standard"],
        preset=args.preset,
        seeds=[0],
        out=args.out,
        overrides=[] if args.steps is None else [f"train.steps={args.steps}"],
        progress=False,
        budget=Budget(params=parse_budget(args.budget)),
    )
    print(format_table(summary))


if __name__ == "__main__":
    main()
