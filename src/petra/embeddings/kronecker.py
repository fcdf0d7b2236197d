"""Kronecker token embeddings: Shravan, *Kronecker Embeddings: Byte-Level Structured Token
Representations*, arXiv 2605.29459 (2026), Section 3.

A fixed codec turns a token's bytes b_1..b_L (L <= P = pos_dim, truncated at a UTF-8
boundary) into a sparse byte-by-position vector, and one learned linear map projects it:

    x = L^(-1/2) sum_p onehot(b_p P + p)  in R^D,  D = 256 P       (= vec(sum_p c_{b_p} (x) e_p))
    z = (x - mean(x)) / (std(x) + 1e-6)                             (std unbiased, per token)
    E = W z,   W: d x D, init N(0, 1/sqrt(D)), the only trained part

With `rank=r` (not in the paper: petra's size knob for budgets below d D; it saves
parameters only while r < d D / (D + d)) the projection is factorized, W = A B with
B: r x D (`projection`) and A: d x r (`expand`), initialized N(0, 1/sqrt(D)) and
N(0, 1/sqrt(r)) so that W's entries start with the same variance 1/D; it has r (D + d)
parameters instead of d D.

Only the `V x (P + 4)` byte table (bytes and int32 lengths) is stored, not a `V x D` table.
(int32, not int16: distributed training broadcasts buffers, and neither gloo nor NCCL
carries int16.)

Because x has exactly L nonzeros, all equal to a = L^(-1/2), its moments are closed-form,

    mu = L a / D = sqrt(L) / D,    sigma^2 = (L a^2 - D mu^2) / (D - 1) = (1 - L / D) / (D - 1),

and the projection is exact without ever forming x:

    W z = (a sum_p W[:, b_p P + p] - mu W 1) / (sigma + 1e-6)

which is one `embedding_bag` over the columns of W (per-sample weight a) minus a rank-one
term. That is the `sparse` mode (default): O(N L d) work and no N x D tensor. Its gradient with
respect to W is the bag's scatter plus the rank-one term, a dense d x D matrix like W itself.
`dense` forms z literally (the reference package's computation); `cached` keeps the V x D
codec table in memory (built chunk by chunk into one buffer). All three agree to float
rounding. The moments and per-token scales are computed in float32 or wider whatever the
weight's dtype (1 / (sigma + eps) = 1e6 for L = 0 would overflow float16), and an empty token
(L = 0) gets scale 0: it embeds to exactly 0 in every dtype.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from petra.embeddings.base import Knob, TokenBytesEmbedding, check_count
from petra.embeddings.token_bytes import token_bytes, tokenizer_fingerprint

BYTE_VALUES = 256
EPS = 1e-6
MODES = ("sparse", "dense", "cached")


def utf8_truncate(data: bytes, max_len: int) -> bytes:
    """At most `max_len` bytes of `data`, never cutting a well-formed UTF-8 character in two.

    Bytes that are not part of a well-formed character count as characters of their own, so
    any byte string (invalid UTF-8 included) has one well-defined truncation.
    """
    if len(data) <= max_len:
        return data
    for start in range(max_len - 1, max(max_len - 4, -1), -1):
        if data[start] & 0xC0 == 0x80:  # continuation byte: keep looking for its lead
            continue
        lead = data[start]
        width = (
            2
            if lead >> 5 == 0b110
            else 3
            if lead >> 4 == 0b1110
            else 4
            if lead >> 3 == 0b11110
            else 1
        )
        if start + width > max_len and _is_utf8(data[start : start + width]):
            return data[:start]
        break
    return data[:max_len]


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def encode_bytes(tokens: Sequence[bytes], pos_dim: int) -> tuple[Tensor, Tensor, int]:
    """Byte strings -> (bytes uint8 (N, P), lengths int32 (N,), number truncated)."""
    table = torch.zeros(len(tokens), pos_dim, dtype=torch.uint8)
    lengths = torch.zeros(len(tokens), dtype=torch.int32)
    truncated = 0
    for row, raw in enumerate(tokens):
        if not isinstance(raw, (bytes, bytearray)):
            raise TypeError(f"token {row} must be bytes, got {type(raw).__name__}")
        kept = utf8_truncate(bytes(raw), pos_dim)
        truncated += len(kept) < len(raw)
        if kept:
            table[row, : len(kept)] = torch.frombuffer(bytearray(kept), dtype=torch.uint8)
        lengths[row] = len(kept)
    return table, lengths, truncated


def codec_indices(byte_rows: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
    """Flat codec index b_p P + p and validity mask p < L, both (N, P)."""
    pos_dim = byte_rows.shape[-1]
    positions = torch.arange(pos_dim, device=byte_rows.device)
    index = byte_rows.long() * pos_dim + positions
    valid = positions < lengths.long().unsqueeze(-1)
    return index, valid


def kronecker_codec(byte_rows: Tensor, lengths: Tensor, dtype=torch.float32) -> Tensor:
    """The codec z, (N, D), formed literally: scatter, then per-token z-normalization."""
    index, valid = codec_indices(byte_rows, lengths)
    scale = lengths.long().clamp_min(1).to(dtype).rsqrt().unsqueeze(-1)  # a = L^(-1/2)
    x = torch.zeros(
        index.shape[0], BYTE_VALUES * byte_rows.shape[-1], dtype=dtype, device=index.device
    )
    x.scatter_add_(1, index, valid.to(dtype) * scale)
    if x.shape[0] == 0:
        return x
    std = x.std(dim=-1, keepdim=True)
    return x.sub_(x.mean(dim=-1, keepdim=True)).div_(std.add_(EPS))  # in place: one N x D


def codec_table(
    byte_rows: Tensor, lengths: Tensor, dtype=torch.float32, chunk_size: int = 1024
) -> Tensor:
    """`kronecker_codec` of every row, (N, D), written chunk by chunk into one preallocated
    buffer: the peak memory is the buffer plus one chunk's temporaries (chunk_size x D each),
    not several N x D tensors (GPT-2 at pos_dim 16: a 785 MiB buffer)."""
    out = torch.empty(
        byte_rows.shape[0], BYTE_VALUES * byte_rows.shape[-1], dtype=dtype, device=byte_rows.device
    )
    for start in range(0, byte_rows.shape[0], chunk_size):
        stop = start + chunk_size
        out[start:stop] = kronecker_codec(byte_rows[start:stop], lengths[start:stop], dtype)
    return out


def codec_moments(lengths: Tensor, codec_dim: int, dtype=torch.float32) -> tuple[Tensor, Tensor]:
    """Closed-form mean mu and denominator sigma + eps of x, per token (float64 inside)."""
    n = lengths.double()
    mu = n.sqrt() / codec_dim
    variance = ((n > 0).double() - n / codec_dim) / (codec_dim - 1)
    return mu.to(dtype), (variance.clamp_min(0).sqrt() + EPS).to(dtype)


def codec_scales(lengths: Tensor, codec_dim: int, dtype=torch.float32) -> tuple[Tensor, Tensor]:
    """Per-token a / (sigma + eps) and mu / (sigma + eps), both 0 for an empty token (L = 0).

    Computed in float64 and returned in `dtype` (pass float32 or wider): for L = 0,
    sigma + eps = 1e-6 and 1 / (sigma + eps) = 1e6 overflows float16, whose largest value is
    65504; for L >= 1 the scale is at most sqrt(D) (L = 1: a = 1, sigma = D^(-1/2)), which every
    dtype holds."""
    mu, sigma = codec_moments(lengths, codec_dim, torch.float64)
    present = lengths > 0
    scale = torch.where(present, lengths.double().clamp_min(1).rsqrt() / sigma, 0.0)
    shift = torch.where(present, mu / sigma, 0.0)
    return scale.to(dtype), shift.to(dtype)


def kronecker_params(dim: int, pos_dim: int = 16, rank: int | None = None) -> int:
    """Trainable parameters of a Kronecker embedding: d D, or r (D + d) with `rank=r`."""
    codec_dim = BYTE_VALUES * pos_dim
    return dim * codec_dim if rank is None else rank * (codec_dim + dim)


def byte_collisions(byte_rows: Tensor, lengths: Tensor) -> list[list[int]]:
    """Groups (of two or more ids) whose stored bytes are identical."""
    groups: dict[bytes, list[int]] = {}
    for token_id, (row, length) in enumerate(
        zip(byte_rows.tolist(), lengths.tolist(), strict=True)
    ):
        groups.setdefault(bytes(row[:length]), []).append(token_id)
    return [ids for ids in groups.values() if len(ids) > 1]


class KroneckerEmbedding(TokenBytesEmbedding):
    """Byte-by-position codec of each token's bytes, then one learned `Linear(D, d)`.

    Build it with `from_tokenizer(tokenizer, dim)` or `from_token_bytes(list_of_bytes, dim)`.
    `byte_table` (V, P) uint8, `byte_lengths` (V,) int32 and `tokenizer_fingerprint` (32 bytes
    of sha256, zeros if unknown) are saved with the weights; loading weights built for other
    token bytes raises `ValueError`. The codec, its closed-form moments and the three modes
    are set out in `petra.embeddings.kronecker`.

    Args:
        byte_table: each token's bytes, zero-padded to P = pos_dim columns.
        byte_lengths: how many bytes of each row are the token's (0 to P).
        dim: d, the width of each embedding.
        mode: `sparse` (the default: one `embedding_bag`, no N x D tensor), `dense` (the
            codec formed literally) or `cached` (the V x D codec table kept in memory).
        fingerprint: the tokenizer's sha256 hex digest, saved with the weights.
        padding_idx: an id whose output is the zero vector, or None.
        num_truncated: how many tokens were cut to P bytes (kept for reports).
        rank: factorize the projection as W = A B through width r (d D -> r (D + d)
            parameters), or None for the paper's single d x D map.

    Raises:
        ValueError: if the table and lengths do not match, a length lies outside [0, P],
            `mode` is unknown or `rank` is not a whole number of at least 1.

    Shapes:
        - byte_table: `(V, P)`; byte_lengths: `(V,)`
        - projection weight W: `(d, D)` with D = 256 P (`(r, D)` and `(d, r)` with a rank)
    """

    kind = "kronecker"
    computes_rows = True
    embeds_bytes = True
    budget_knob = ("rank",)
    report_layouts = (
        ("kronecker, pos_dim 16", {"pos_dim": 16}),
        ("kronecker, pos_dim 32", {"pos_dim": 32}),
        ("kronecker, pos_dim 16, rank 64", {"pos_dim": 16, "rank": 64}),
    )
    # A causal LM's head is its own by default: the paper's LM arm has its own learned
    # Linear(d, V) head (D != d: nothing to tie), and a tied one starts far above ln V (`table`).
    head_tied_by_default = False

    @classmethod
    def params_for(cls, vocab_size: int, dim: int, **options) -> int:
        """d D, or r (D + d) with `rank=r` (D = 256 P): `kronecker_params`."""
        return kronecker_params(dim, cls.option(options, "pos_dim"), cls.option(options, "rank"))

    @classmethod
    def budget_layouts(cls, vocab_size: int, dim: int, budget: int, **options) -> list[Knob]:
        """The full projection, or any factorization smaller than it."""
        pos_dim = cls.option(options, "pos_dim")
        full = kronecker_params(dim, pos_dim)
        return [
            Knob([0], lambda _: full, lambda _: {}),
            Knob(
                range(1, (full - 1) // (BYTE_VALUES * pos_dim + dim) + 1),
                lambda r: kronecker_params(dim, pos_dim, r),
                lambda r: {"rank": r},
            ),
        ]

    @classmethod
    def from_saved(
        cls, vocab_size: int, dim: int, state: dict, prefix: str = "", **options
    ) -> KroneckerEmbedding:
        """The byte table and lengths are read from the state (no tokenizer needed); loading
        the state then brings the tokenizer's fingerprint. How many tokens were cut when the
        table was built is not saved: `num_truncated` is None."""
        byte_table, byte_lengths = cls.saved(state, prefix, "byte_table", "byte_lengths")
        where = f"{prefix}byte_table"
        cls.check_saved_size(where, byte_table.shape[0], "tokens", "vocab_size", vocab_size)
        cls.check_saved_size(where, byte_table.shape[1], "positions", "pos_dim",
                             options.get("pos_dim"))  # fmt: skip
        return cls(
            byte_table, byte_lengths, dim, mode=options.get("mode", "sparse"),
            padding_idx=options.get("padding_idx"), rank=options.get("rank"),
        )  # fmt: skip

    def __init__(
        self,
        byte_table: Tensor,
        byte_lengths: Tensor,
        dim: int,
        *,
        mode: str = "sparse",
        fingerprint: str | None = None,
        padding_idx: int | None = None,
        num_truncated: int | None = None,
        rank: int | None = None,
    ):
        if byte_table.dim() != 2 or byte_lengths.shape != byte_table.shape[:1]:
            raise ValueError(
                f"byte_table must be (V, pos_dim) and byte_lengths (V,), got "
                f"{tuple(byte_table.shape)} and {tuple(byte_lengths.shape)}"
            )
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; choose one of {MODES}")
        if (
            byte_lengths.numel()
            and not 0 <= int(byte_lengths.min()) <= int(byte_lengths.max()) <= byte_table.shape[1]
        ):
            raise ValueError(f"byte_lengths must lie in [0, pos_dim={byte_table.shape[1]}]")
        super().__init__(byte_table.shape[0], dim, padding_idx)
        self.pos_dim = byte_table.shape[1]
        self.codec_dim = BYTE_VALUES * self.pos_dim
        self.mode = mode
        self.num_truncated = num_truncated
        self.register_buffer("byte_table", byte_table.to(torch.uint8).clone())
        self.register_buffer("byte_lengths", byte_lengths.to(torch.int32).clone())
        digest = bytes.fromhex(fingerprint) if fingerprint else bytes(32)
        self.register_buffer("tokenizer_fingerprint", torch.tensor(list(digest), dtype=torch.uint8))
        if rank is not None:
            check_count("rank", rank)
        self.rank = rank
        self._scales_by_length: dict = {}  # (dtype, device) -> `_length_scales`
        width = dim if rank is None else rank
        self.projection = nn.Linear(self.codec_dim, width, bias=False)
        # W (d x D) is stored column-major, i.e. as a contiguous W^T (D x d), so that the sparse
        # mode's embedding_bag reads rows of W^T in place (a strided read is ~80x slower on
        # CPU); gradients and optimizer states follow the parameter's layout. safetensors wants
        # contiguous tensors: save `{k: v.contiguous() ...}` (as `save_pretrained` does).
        self.projection.weight = nn.Parameter(torch.empty(self.codec_dim, width).t())
        self._draw_map(self.projection)
        self.expand = None if rank is None else nn.Linear(rank, dim, bias=False)
        if self.expand is not None:
            self._draw_map(self.expand)
        if mode == "cached":
            codec = codec_table(self.byte_table, self.byte_lengths)
            self.register_buffer("codec_cache", codec, persistent=False)  # (V, D)

    @staticmethod
    @torch.no_grad()
    def _draw_map(linear: nn.Linear) -> None:
        """The map's weight ~ N(0, 1 / fan_in), from the global RNG."""
        nn.init.normal_(linear.weight, std=1.0 / math.sqrt(linear.in_features))

    def reset_parameters(self) -> None:
        """W ~ N(0, 1/D), rows of norm about 1 (with a rank, B ~ N(0, 1/D) and
        A ~ N(0, 1/r)), from the global RNG, as the constructor draws them."""
        for linear in (self.projection, self.expand):
            if linear is not None:
                self._draw_map(linear)

    # -- constructors -------------------------------------------------------------------
    @torch.no_grad()
    def resized(self, pieces: list[bytes], fingerprint: str | None = None) -> KroneckerEmbedding:
        """The same projection over the bytes of `pieces`: only the byte rows change."""
        weight = self.projection.weight
        new = type(self).from_token_bytes(
            pieces, self.embedding_dim, pos_dim=self.pos_dim, mode=self.mode,
            fingerprint=fingerprint, padding_idx=self.padding_idx, rank=self.rank,
        ).to(device=weight.device)  # fmt: skip
        kept = min(self.num_embeddings, new.num_embeddings)
        self.check_resized_prefix(torch.equal(new.byte_table[:kept], self.byte_table[:kept]))
        new.projection.weight.copy_(weight)
        if self.expand is not None:
            new.expand.weight.copy_(self.expand.weight)
        return new.to(dtype=weight.dtype)

    @classmethod
    def from_token_bytes(
        cls,
        tokens: Sequence[bytes],
        dim: int,
        *,
        pos_dim: int = 16,
        mode: str = "sparse",
        fingerprint: str | None = None,
        padding_idx: int | None = None,
        rank: int | None = None,
    ) -> KroneckerEmbedding:
        """Build from one byte string per id; longer ones are cut to `pos_dim` at a UTF-8
        boundary.

        Args:
            tokens: the bytes of each token, in id order.
            dim: d, the width of each embedding.
            pos_dim: P, the byte positions kept per token (D = 256 P).
            mode: `sparse`, `dense` or `cached` (see the class).
            fingerprint: the tokenizer's sha256 hex digest, or None.
            padding_idx: an id whose output is the zero vector, or None.
            rank: the width of a factorized projection, or None.

        Returns:
            The embedding, for V = len(tokens) ids.

        Raises:
            ValueError: if `pos_dim` is not a whole number of at least 1 (and as the class).
            TypeError: if a token is not bytes.
        """
        check_count("pos_dim", pos_dim)
        table, lengths, truncated = encode_bytes(tokens, pos_dim)
        return cls(
            table, lengths, dim, mode=mode, fingerprint=fingerprint,
            padding_idx=padding_idx, num_truncated=truncated, rank=rank,
        )  # fmt: skip

    @classmethod
    def from_tokenizer(
        cls,
        tokenizer,
        dim: int,
        *,
        pos_dim: int = 16,
        mode: str = "sparse",
        scheme: str | None = None,
        padding_idx: int | None = None,
        rank: int | None = None,
    ) -> KroneckerEmbedding:
        """Build from the bytes of every piece of a tokenizer.

        Args:
            tokenizer: a `tokenizers.Tokenizer` or a `transformers` fast tokenizer
                (byte-level BPE, WordPiece or SentencePiece pieces).
            dim: d, the width of each embedding.
            pos_dim: P, the byte positions kept per token (D = 256 P).
            mode: `sparse`, `dense` or `cached` (see the class).
            scheme: how pieces map to bytes (`byte_level`, `wordpiece`, `sentencepiece`,
                `utf8`), or None to read it off the tokenizer.
            padding_idx: an id whose output is the zero vector, or None.
            rank: the width of a factorized projection, or None.

        Returns:
            The embedding, one row per token of the tokenizer, with its fingerprint.

        Raises:
            TypeError: if `tokenizer` is neither kind of tokenizer.
            ValueError: for an unknown `scheme` (and as `from_token_bytes`).
        """
        return cls.from_token_bytes(
            token_bytes(tokenizer, scheme), dim, pos_dim=pos_dim, mode=mode,
            fingerprint=tokenizer_fingerprint(tokenizer), padding_idx=padding_idx, rank=rank,
        )  # fmt: skip

    # -- embedding ----------------------------------------------------------------------
    def _embed(self, ids: Tensor) -> Tensor:
        if self.mode == "cached":
            return self._expand(
                self.projection(
                    self.codec_cache.index_select(0, ids).to(self.projection.weight.dtype)
                )
            )
        return self.project_codes(
            self.byte_table.index_select(0, ids), self.byte_lengths.index_select(0, ids)
        )

    def _expand(self, projected: Tensor) -> Tensor:
        return projected if self.expand is None else self.expand(projected)

    def project_codes(self, byte_rows: Tensor, lengths: Tensor) -> Tensor:
        """(N, P) bytes and (N,) lengths -> (N, d), by the sparse identity or the dense codec.

        The codec's moments and per-token scales are computed in float32 or wider (float64
        weights keep float64) and only then cast to the weight's dtype, so a float16 or
        bfloat16 projection rounds its result, not its normalization."""
        weight = self.projection.weight  # (d, D)
        wide = torch.promote_types(weight.dtype, torch.float32)
        if self.mode != "sparse":
            codec = kronecker_codec(byte_rows, lengths, wide).to(weight.dtype)
            return self._expand(self.projection(codec))
        index, valid = codec_indices(byte_rows, lengths)
        scale, shift = (  # a / sigma, mu / sigma of each token, looked up by its length
            per_length.index_select(0, lengths) for per_length in self._length_scales(wide)
        )
        out = F.embedding_bag(
            index,
            weight.t(),
            per_sample_weights=(valid * scale[:, None]).to(weight.dtype),
            mode="sum",
        )  # (N, d): (a / sigma) sum_p W[:, b_p P + p]
        # - (mu / sigma) W 1, in place
        return self._expand(out.addr_(shift.to(weight.dtype), weight.sum(dim=1), alpha=-1))

    def _length_scales(self, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        """`codec_scales` of every length 0..P, (P + 1,) each: a token's scales depend on its
        length alone. Computed once per dtype and device."""
        device = self.byte_lengths.device
        key = (dtype, device)
        if "_scales_by_length" not in self.__dict__:  # a module pickled before it existed
            self._scales_by_length = {}
        if key not in self._scales_by_length:
            lengths = torch.arange(self.pos_dim + 1, device=device)
            self._scales_by_length[key] = codec_scales(lengths, self.codec_dim, dtype)
        return self._scales_by_length[key]

    def table(self, chunk_size: int = 8192) -> Tensor:
        """All V embeddings, (V, d), computed in chunks; differentiable.

        A head tied through it, `logits = h @ table().T`, starts far above ln V: rows E(v) =
        W z have norm about sqrt(d) (||z||^2 = D - 1, W ~ N(0, 1/D)), and a normalized
        hidden state h, of norm about sqrt(d), still carries its input token's E(v), so that
        token's logit is about d and wins: a tied causal LM starts at a loss of order d nats,
        far above ln V (`petra train lm --preset demo --set model.embedding=kronecker --set
        model.tie_embeddings=true` logs a validation loss of 107.8 nats at step 0, d = 128,
        against ln V = 8.3).
        So petra's causal LM gives this kind an untied head by default (the paper's setup;
        `ModelConfig.tie_embeddings`); a host model tying it should expect that start.
        """
        return super().table(chunk_size)

    def embed_bytes(self, tokens: Sequence[bytes]) -> Tensor:
        """Embed arbitrary byte strings (forced out-of-vocabulary input), (N, d): the code
        of each, cut to `pos_dim` bytes as a token's, projected."""
        table, lengths, _ = encode_bytes(tokens, self.pos_dim)
        device = self.byte_table.device
        return self.project_codes(table.to(device), lengths.to(device))

    def _rows_with_bytes(self, flat: Tensor, positions: Tensor, pieces: list[bytes]) -> Tensor:
        """One pass of the byte code: the bytes of `pieces` replace the byte rows of the ids
        at `positions` before the projection."""
        rows, lengths = self.byte_table[flat], self.byte_lengths[flat]
        new_rows, new_lengths, _ = encode_bytes(pieces, self.pos_dim)
        rows[positions], lengths[positions] = new_rows.to(rows.device), new_lengths.to(rows.device)
        kept = flat.index_fill(0, positions, -1)  # an overridden position is not padding
        return self._zero_padding(self.project_codes(rows, lengths), kept)

    # -- analysis and safety ------------------------------------------------------------
    def collisions(self) -> list[list[int]]:
        """Groups of ids whose (truncated) bytes are identical, hence identical embeddings."""
        return byte_collisions(self.byte_table.cpu(), self.byte_lengths.cpu())

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        theirs = state_dict.get(prefix + "tokenizer_fingerprint")
        table = state_dict.get(prefix + "byte_table")
        lengths = state_dict.get(prefix + "byte_lengths")
        if table is not None and lengths is not None:
            mine, theirs_hex = (
                self.tokenizer_fingerprint,
                bytes(theirs.tolist()).hex() if theirs is not None else "unknown",
            )
            same = (
                table.shape == self.byte_table.shape
                and torch.equal(table.cpu(), self.byte_table.cpu())
                and torch.equal(lengths.cpu().long(), self.byte_lengths.cpu().long())
            )
            if not same:
                raise ValueError(
                    f"these Kronecker weights were built for other token bytes (tokenizer "
                    f"fingerprint {theirs_hex[:12]}, byte table {tuple(table.shape)}) than this "
                    f"embedding (fingerprint {bytes(mine.tolist()).hex()[:12]}, byte table "
                    f"{tuple(self.byte_table.shape)}): build the embedding from the tokenizer the "
                    "checkpoint was trained with, or rebuild it from the checkpoint alone with "
                    "KroneckerEmbedding.from_saved"
                )
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _scale(self, factor: float) -> None:
        self.projection.weight.mul_(factor)  # E = W z is linear in W

    @classmethod
    def has_least_squares_map(cls, options: dict) -> bool:
        return cls.option(options, "rank") is None

    def least_squares_map(self):
        """Without a rank, E = W z: the features are the codec z, and M is W."""
        if self.expand is not None:
            return None
        features = lambda ids: kronecker_codec(  # noqa: E731
            self.byte_table[ids], self.byte_lengths[ids]
        )
        return features, self.projection.weight.copy_

    def trained_matrix(self) -> Tensor:
        return self.projection.weight  # (d, D), or (r, D) with a rank: rows are outputs

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, pos_dim={self.pos_dim}, codec_dim={self.codec_dim}, "
            f"mode={self.mode!r}" + ("" if self.rank is None else f", rank={self.rank}")
        )
