"""Measurements behind the claims that are not training outcomes: step times and memory.

Each function builds its arms in one process and times whole-model training steps, the
trainer's own step: the task's real loss on real batches (real tokenizer, real text from the
shared data), backward, gradient clipping at the trainer's default norm, and petra's
optimizer (`build_optimizer`: AdamW, decay on weight matrices only) and schedule. Repeats are
interleaved across the arms, each repeat visiting the arms in the next order of a Williams
design (`williams_orders`), so that the drift of a shared machine, an arm's place in a repeat
and the arm run just before it hit every arm alike; every arm sees the same batches in the same
order. A repeat's figure is the median over its `steps` timed steps (after warm-up steps),
in milliseconds per step.

Every function returns

    {"arms": {label: {"description": str, "params": {...},
                      "per_seed": {"0": {"step_ms": ...}, "1": {...}, ...}}},
     "checks": [{"name": str, "value": number, "expected": number, "holds": bool}],
     "notes": [str, ...]}

where the `per_seed` keys are repeat indices (repeats play the role of seeds: paired by
repeat across the arms). `quick=True` shrinks batches and sequences for tests; the exact
facts in `checks` (byte counts, parameter counts) do not depend on it.

- `pete_step_time`: learned against Fourier (PETE) sentence encoders, nli-sts task.
- `kronecker_codec_overhead`: the paper's own on-the-fly Kronecker codec (its reference
  package's dynamic mode) against its precomputed V x D codec table, and petra's sparse path
  beside them, in a causal LM.
- `spectral_scaling`: the L-Transformer at p = 2, 4, 8 slices against the standard encoder,
  IMDB classification; encoder parameters against 1/p of the standard encoder's.
"""

from __future__ import annotations

import gc
import os
import statistics
import time

import torch
from torch import Tensor, nn

from petra.embeddings import KroneckerEmbedding, TokenEmbedding
from petra.models import ModelConfig, build_model
from petra.reproduce.claims import KRONECKER_RUNTIME, PETE_TABLE1, Claim, Comparison
from petra.reproduce.stats import (
    detectable_difference,
    interval,
    paired_differences,
    repeats_for_power,
    threshold,
    verdict,
)
from petra.tasks.run import run_config
from petra.training import TrainConfig
from petra.training.optim import NORM_LAYERS, build_optimizer, build_schedule, optimizer_step

STEP_METRIC = "step_ms"


# -- timing ----------------------------------------------------------------------------------


class Arm:
    """One model in training: its task (loss, batches), and petra's optimizer and schedule
    with the trainer's default settings (lr, weight decay, schedule, clipping)."""

    def __init__(self, description: str, model: nn.Module, task, params: dict):
        self.description, self.model, self.task, self.params = description, model, task, params
        config = TrainConfig()
        self.grad_clip = config.grad_clip
        self.optimizer = build_optimizer(model, config)
        self.schedule = build_schedule(self.optimizer, config)

    def step(self, batch: dict[str, Tensor]) -> None:
        """One training step as the trainer takes it (`optimizer_step`, one process)."""
        self.model.train()
        loss, _ = self.task.loss(self.model, batch)
        if not torch.isfinite(loss.detach()).item():
            raise RuntimeError(f"{self.description}: the loss is {loss.item()}")
        optimizer_step(self.model, loss, self.optimizer, self.schedule, self.grad_clip)


def _batches(task, batch_size: int, count: int, seed: int = 0) -> list[dict[str, Tensor]]:
    """The first `count` batches of the task's own sampler (cycled if an epoch has fewer)."""
    sampler = task.batch_sampler(batch_size, seed)
    indices = list(sampler)
    if not indices:
        raise ValueError(f"the task's data do not fill one batch of {batch_size}")
    return [
        task.collate([task.train_dataset[i] for i in indices[n % len(indices)]])
        for n in range(count)
    ]


def williams_orders(n: int) -> list[list[int]]:
    """The arm orders of a Williams design for n arms: across the list every arm takes every
    place equally often and directly follows every other arm equally often, so neither the
    place in a repeat nor the arm run just before (its caches, its allocations) favours one
    arm. n orders for even n, 2n for odd n: row 0 is 0, 1, n-1, 2, n-2, ..., row r adds r
    (mod n) to it, and for odd n each row's reverse is added."""
    if n < 1:
        raise ValueError(f"need at least one arm, got {n}")
    first, low, high = [0], 1, n - 1
    while len(first) < n:
        first.append(low)
        low += 1
        if len(first) < n:
            first.append(high)
            high -= 1
    rows = [[(arm + shift) % n for arm in first] for shift in range(n)]
    return rows if n % 2 == 0 else rows + [row[::-1] for row in rows]


# a 1-minute load average above this process's own torch threads plus this, read before
# timing (after the warm-up, which already loads the machine), means another process runs
BUSY_LOAD = 0.75


def _time_arms(
    arms: dict[str, Arm],
    batches: list[dict[str, Tensor]],
    repeats: int,
    steps: int,
    warmup: int,
) -> tuple[dict[str, dict[str, dict[str, float]]], tuple[float, float]]:
    """({label: {"0": {"step_ms": median of that repeat's steps}, ...}}, load averages before
    and after): every arm warms up on the first `warmup` batches, then each repeat r times
    `steps` steps of every arm on the next batches, the same ones for every arm, the arms
    in the order of repeat r's row of a Williams design (`williams_orders`: with a multiple
    of its rows as repeats, each arm takes each place and follows each other arm equally
    often)."""
    if repeats < 1 or steps < 1 or warmup < 0:
        raise ValueError(
            f"need repeats >= 1, steps >= 1, warmup >= 0, got {repeats}, {steps}, {warmup}"
        )
    labels = list(arms)
    for label in labels:
        for n in range(warmup):
            arms[label].step(batches[n % len(batches)])
    per_seed = {label: {} for label in labels}
    load_before, busy = os.getloadavg()[0], torch.get_num_threads() + BUSY_LOAD
    if load_before > busy:
        print(
            f"warning: the machine's load average is {load_before:.2f} before timing, above "
            f"this run's own {torch.get_num_threads()} thread(s): another process is running, "
            "so these times will be noisy (the load is recorded in the notes); time on a "
            "quiet machine",
            flush=True,
        )
    orders = williams_orders(len(labels))
    for repeat in range(repeats):
        for label in (labels[i] for i in orders[repeat % len(orders)]):
            gc.collect()
            times = []
            for n in range(steps):
                batch = batches[(warmup + repeat * steps + n) % len(batches)]
                start = time.perf_counter()
                arms[label].step(batch)
                times.append(1000 * (time.perf_counter() - start))
            per_seed[label][str(repeat)] = {STEP_METRIC: statistics.median(times)}
    load_after = os.getloadavg()[0]
    if load_after > busy and load_before <= busy:
        print(
            f"warning: the machine's load average rose to {load_after:.2f} while timing: "
            "another process started, so these times are noisy; time on a quiet machine",
            flush=True,
        )
    return per_seed, (load_before, load_after)


def _result(arms: dict[str, Arm], per_seed: dict, checks: list[dict], notes: list[str]) -> dict:
    return {
        "arms": {
            label: {
                "description": arm.description,
                "params": arm.params,
                "per_seed": per_seed[label],
            }
            for label, arm in arms.items()
        },
        "checks": checks,
        "notes": notes,
    }


def _check(name: str, value: float, expected: float, holds: bool) -> dict:
    return {"name": name, "value": value, "expected": expected, "holds": bool(holds)}


def _timing_note(repeats: int, steps: int, warmup: int, load: tuple[float, float]) -> str:
    """How the step times were taken, with the machine's 1-minute load average before and
    after (on a shared machine, another busy process slows a multi-threaded step badly)."""
    return (
        f"step_ms: per repeat, the median of {steps} timed training steps, after {warmup} "
        f"warm-up step(s) per arm once before the repeats; {repeats} repeats interleaved "
        f"across the arms (orders of a Williams design), on {torch.get_num_threads()} torch "
        f"CPU thread(s) of {os.cpu_count()} cores, load average {load[0]:.2f} before and "
        f"{load[1]:.2f} after (this run's own threads included); compare arms within a repeat"
    )


def claim_model(claim: Claim, label: str) -> dict:
    """The model section of the run that the claim's arm `label` trains (its preset with the
    arm's changes), as `ModelConfig` fields."""
    (arm,) = [arm for arm in claim.arms if arm.label == label]
    return run_config(arm.task, arm.preset, changes=list(arm.overrides.items()))["model"]


def _seeded_model(task, **settings):
    """The task's model with these settings, its weights drawn from seed 0 (every arm alike)."""
    torch.manual_seed(0)
    config = ModelConfig(**task.model_fields(), **settings)
    return build_model(config, tokenizer=task.tokenizer)


# -- a) PETE: Fourier against learned, sentence encoder --------------------------------------


def pete_step_time(repeats: int = 3, steps: int = 10, quick: bool = False) -> dict:
    """Training-step time of the learned and the Fourier (PETE) sentence encoder at the size
    of the paper's Table 1 (d = 256, 1 layer, 1 head, bert-base-uncased, V = 30,522), on the
    nli-sts task: SNLI entailment pairs (max length 48), batch 64 (8 if `quick`), the task's
    contrastive loss (InfoNCE, both directions, learnable temperature)."""
    from petra.tasks.sentence import NLISTSTask, SentenceData

    batch_size, warmup = (8, 1) if quick else (64, 2)
    max_length = 48
    task = NLISTSTask(SentenceData(max_length=max_length, max_train_pairs=batch_size * 64), seed=0)
    # each arm is the pete-sts-zero-shot claim's arm of this size (set up as the official
    # code sets up its arm), its positions cut to the sequences timed
    embeddings = {
        "learned": "learned V x d table (nn.Embedding), RMSNorm and dropout 0.1",
        "fourier": "Fourier features of the normalized id + a d x d linear refinement with "
        "bias, RMSNorm (PETE)",
    }
    arms = {}
    for label, what in embeddings.items():
        model_section = claim_model(PETE_TABLE1, f"{label}-1x256")
        model = _seeded_model(task, **{**model_section, "max_len": max_length})
        task.prepare_model(model)
        arms[label] = Arm(f"sentence encoder, {what}", model, task, model.param_report())
    batches = _batches(task, batch_size, warmup + repeats * steps)
    per_seed, load = _time_arms(arms, batches, repeats, steps, warmup)
    notes = [
        _timing_note(repeats, steps, warmup, load),
        f"nli-sts: {len(task.train_dataset)} SNLI entailment pairs, batch {batch_size}, "
        f"max length {max_length}, both sides of every pair encoded; each arm set up as the "
        "official code's: dropout 0.1 in the learned arm only",
    ]
    return _result(arms, per_seed, [], notes)


# -- b) Kronecker: the paper's on-the-fly codec against a precomputed codec table ------------


class ReferenceKronecker(TokenEmbedding):
    """The reference package's module (`kronecker_embeddings.KroneckerEmbedding`, 0.1.1, the
    paper's own code) as a petra token embedding, so that it sits in petra's LM in place of
    petra's: `forward(ids)` checks the ids as every petra embedding does, then returns the
    package module's output on the flat ids, every position computed as the package computes
    it (`computes_rows` False: no per-distinct-id work, which is petra's own). Its modes:
    "dynamic" (the paper's on-the-fly arm: gather the (N, P) bytes and int16 lengths, scatter
    the dense (N, D) codec, z-normalize, project) and "cached" (the paper's baseline: gather
    N rows of a precomputed V x D float32 codec table, project). Nothing else is added."""

    kind = "kronecker-reference"

    def __init__(self, module: nn.Module):
        super().__init__(module.vocab_size, module.d_model)
        self.reference = module

    def _embed(self, ids: Tensor) -> Tensor:
        return self.reference(ids)


def reference_kronecker(embedding: KroneckerEmbedding, mode: str) -> ReferenceKronecker:
    """The reference package's module in `mode` ("dynamic" or "cached") on `embedding`'s byte
    table and lengths (the package stores the lengths as int16), with `embedding`'s projection
    weight: for the same bytes and weights the two compute the same function (DESIGN.md; the
    package's own byte builder decodes pieces, petra reads them, which differs for a few
    tokens, so both take petra's bytes). No factorized projection (`rank`): the package has
    none."""
    try:
        import kronecker_embeddings
    except ImportError:
        raise ImportError(
            "the reference arms need the paper's package: pip install 'petra[reference]' "
            "(kronecker-embeddings==0.1.1)"
        ) from None
    if embedding.rank is not None:
        raise ValueError("the reference package has no factorized projection: use rank=None")
    module = kronecker_embeddings.KroneckerEmbedding(
        vocab_size=embedding.num_embeddings,
        d_model=embedding.embedding_dim,
        pos_dim=embedding.pos_dim,
        mode=mode,
        byte_buffer=embedding.byte_table,
        length_buffer=embedding.byte_lengths,
    )
    with torch.no_grad():
        module.projection.weight.copy_(embedding.projection.weight)
    return ReferenceKronecker(module)


# the fewest repeats whose halves are shown apart (a half of 2 has t_{0.975, 1} = 12.7)
HALVES_FROM = 6


def _resolution(per_seed: dict, comparisons: tuple[Comparison, ...]) -> list[dict]:
    """Per comparison of arm a against arm b on the step time (relative, lower is better):
    the per-repeat paired differences d_r = 100 (a_r / b_r - 1) %, their mean (and the mean
    of a_r - b_r in ms), standard deviation s and the half-width h = t_{0.975, n - 1} s /
    sqrt(n) of the 95 % interval on their mean over n repeats (its precision); the bound B
    its test must clear (`stats.threshold`: 0, or the parity margin) and whether the interval
    clears it, on either side; the distance from B that n repeats clear 80 % of the time by
    the t approximation (`stats.detectable_difference`); where the interval has not cleared
    B, the repeats that would, 80 % of the time, were the true difference the measured
    mean; for a parity test, the repeats that would show the margin met were the arms
    equally fast; and the interval and verdict of the first and of the second half of the
    repeats alone, where drift over the measurement shows (`HALVES_FROM` repeats or more).
    One repeat: none of these."""
    rows = []
    for comparison in comparisons:
        a, b, test, margin = comparison.a, comparison.b, comparison.test, comparison.margin
        if not (comparison.metric == STEP_METRIC and comparison.relative):
            raise ValueError(f"{comparison.name}: resolution is of relative {STEP_METRIC}")
        repeats = sorted(per_seed[a], key=int)
        times_a = [per_seed[a][r][STEP_METRIC] for r in repeats]
        times_b = [per_seed[b][r][STEP_METRIC] for r in repeats]
        differences = paired_differences(times_a, times_b, relative=True)
        mean, low, high = interval(differences)
        bound = threshold(comparison.better, test, margin)
        row = {
            "a": a,
            "b": b,
            "test": test,
            "margin_pct": margin,
            "bound_pct": bound,
            "repeats": len(differences),
            "mean_pct": mean,
            "mean_ms": statistics.fmean(x - y for x, y in zip(times_a, times_b, strict=True)),
            "sd_pct": None,
            "half_width_pct": None,
            "cleared": False,
            "detectable_pct": None,
            "repeats_to_clear": None,
            "repeats_to_meet_margin": None,
            "halves": None,
        }
        if low is None or high is None:
            rows.append(row)
            continue
        sd = statistics.stdev(differences)
        cleared = low > bound or high < bound
        row |= {
            "sd_pct": sd,
            "half_width_pct": mean - low,
            "cleared": cleared,
            "detectable_pct": detectable_difference(sd, len(differences)),
        }
        if not cleared and mean != bound:
            row["repeats_to_clear"] = repeats_for_power(sd, abs(mean - bound))
        if test == "non_inferior":
            row["repeats_to_meet_margin"] = repeats_for_power(sd, margin)
        if len(differences) >= HALVES_FROM:
            middle = len(differences) // 2
            row["halves"] = []
            for first, part in ((0, differences[:middle]), (middle, differences[middle:])):
                half_mean, half_low, half_high = interval(part)
                row["halves"].append({
                    "repeats": [first, first + len(part) - 1],
                    "mean_pct": half_mean,
                    "low_pct": half_low,
                    "high_pct": half_high,
                    "verdict": verdict(half_low, half_high, comparison.better, test, margin),
                })  # fmt: skip
        rows.append(row)
    return rows


def _resolution_note(row: dict) -> str:
    pair = f"{row['a']} vs {row['b']}"
    if row["half_width_pct"] is None:
        return f"resolution, {pair}: one repeat, no interval"
    bound = f"{row['bound_pct']:+g} %" if row["bound_pct"] else "0 %"
    side = "above" if row["mean_pct"] > row["bound_pct"] else "below"
    if row["cleared"]:
        where = f"The interval lies wholly {side} the bound."
    elif row["repeats_to_clear"] is None:  # the mean on the bound: no count of repeats would
        where = "The interval does not clear it, and its mean lies on the bound."
    else:
        where = (
            f"The interval does not clear it: about {row['repeats_to_clear']} repeats at this "
            f"spread would put it wholly {side} the bound 80 % of the time, were the true "
            f"difference the measured {row['mean_pct']:+.2f} %."
        )
    met = (
        f" Were the arms equally fast, showing the {row['margin_pct']:g} % margin met would "
        f"take about {row['repeats_to_meet_margin']} repeats (80 % of the time)."
        if row["repeats_to_meet_margin"] is not None
        else ""
    )
    halves = (
        " By halves: "
        + "; ".join(
            f"repeats {h['repeats'][0]}-{h['repeats'][1]} {h['mean_pct']:+.2f} % "
            f"[{h['low_pct']:+.2f}, {h['high_pct']:+.2f}] ({h['verdict']})"
            for h in row["halves"]
        )
        + "."
        if row["halves"]
        else ""
    )
    return (
        f"resolution, {pair} ({row['test']}, bound {bound}): per-repeat paired differences "
        f"{row['mean_pct']:+.2f} % on average ({row['mean_ms']:+.1f} ms a step), sd "
        f"{row['sd_pct']:.2f} %; over {row['repeats']} repeats the 95 % interval reaches "
        f"{row['half_width_pct']:.2f} % either side of the mean (its precision), and a true "
        f"difference {row['detectable_pct']:.2f} % from the bound would clear it about 80 % of "
        f"the time (t approximation). {where}{met}{halves}"
    )


def kronecker_codec_overhead(repeats: int = 3, steps: int = 10, quick: bool = False) -> dict:
    """Training-step time of one causal LM with three Kronecker embeddings, in one process:

    - "reference-on-the-fly": the reference package's dynamic dense codec (`ReferenceKronecker`
      in mode "dynamic"), the paper's on-the-fly arm;
    - "reference-precomputed": the package's precomputed V x D codec table (mode "cached",
      the alternative its README sets against the dynamic mode);
    - "petra-sparse": petra's own `sparse` mode (an embedding_bag over the projection's
      columns, once per distinct id).

    GPT-2 tokenizer (V = 50,257), d = 128, 2 layers, 2 heads, pos_dim 16, untied head, blocks
    of 128 Shakespeare tokens, batch 16 (`quick`: blocks of 32, batch 2), the next-token loss.
    The three models start from the same weights (the reference modules take petra's bytes
    and projection) and see the same batches; before timing, their embeddings of the first
    batch's tokens are checked equal (to 1e-5: float32 rounding), else `RuntimeError`.
    Timing and its interleaving are `_time_arms`'; `resolution` (see `_resolution`) says, for
    each comparison of the claim, how finely the repeats resolved it.

    Checks: the paper's buffer, V x (P + 2) bytes (the package's (V, P) uint8 bytes and (V,)
    int16 lengths); petra's, V x (P + 4) (int32 lengths); the precomputed table, V x D x 4
    bytes (float32, D = 256 P)."""
    from petra.tasks.lm import LMData, LMTask

    batch_size, block, warmup = (2, 32, 1) if quick else (16, 128, 2)
    pos_dim = 16
    task = LMTask(
        LMData(
            tokenizer="gpt2",
            block_size=block,
            max_train_blocks=batch_size * 64,
            max_eval_blocks=1,
        ),
        seed=0,
    )
    reference_modes = {
        "reference-on-the-fly": ("dynamic", "the paper's dynamic codec, dense, on the fly"),
        "reference-precomputed": ("cached", "the paper's precomputed V x D codec table"),
    }
    models = {}
    for label in ("petra-sparse", *reference_modes):
        models[label] = _seeded_model(
            task,
            dim=128,
            n_layers=2,
            n_heads=2,
            max_len=block,
            embedding={"kind": "kronecker", "pos_dim": pos_dim, "mode": "sparse"},
            tie_embeddings=False,
        )
    petra = models["petra-sparse"].embedding
    assert isinstance(petra, KroneckerEmbedding)
    for label, (mode, _) in reference_modes.items():
        models[label].embedding = reference_kronecker(petra, mode)
    descriptions = {
        "petra-sparse": "petra's sparse mode (embedding_bag), on the fly",
        **{label: what for label, (_, what) in reference_modes.items()},
    }
    batches = _batches(task, batch_size, warmup + repeats * steps)
    ids = batches[0]["input_ids"]
    with torch.no_grad():
        expected = petra(ids)
        gaps = {
            label: (models[label].embedding(ids) - expected).abs().max().item()
            for label in reference_modes
        }
    if not all(gap <= 1e-5 for gap in gaps.values()):
        raise RuntimeError(f"the reference arms' embeddings are not petra's: max |gap| {gaps}")
    arms = {
        label: Arm(
            f"causal LM, Kronecker embedding: {descriptions[label]}",
            model,
            task,
            model.param_report(),
        )
        for label, model in models.items()
    }
    vocab = task.tokenizer.get_vocab_size()
    codec_dim = 256 * pos_dim

    def buffer_bytes(module: nn.Module, names: tuple[str, ...]) -> int:
        buffers = dict(module.named_buffers())
        return sum(buffers[n].numel() * buffers[n].element_size() for n in names)

    paper = buffer_bytes(
        models["reference-on-the-fly"].embedding.reference, ("_byte_buffer", "_length_buffer")
    )
    ours = buffer_bytes(petra, ("byte_table", "byte_lengths"))
    table = buffer_bytes(models["reference-precomputed"].embedding.reference, ("_codec_table",))
    fingerprint = buffer_bytes(petra, ("tokenizer_fingerprint",))
    checks = [
        _check(
            "the paper's on-the-fly buffer bytes = V x (pos_dim + 2) (uint8 bytes, int16 lengths)",
            paper,
            vocab * (pos_dim + 2),
            paper == vocab * (pos_dim + 2),
        ),
        _check(
            "petra's on-the-fly buffer bytes = V x (pos_dim + 4) (uint8 bytes, int32 lengths)",
            ours,
            vocab * (pos_dim + 4),
            ours == vocab * (pos_dim + 4),
        ),
        _check(
            "precomputed codec table bytes = V x D x 4 (float32, D = 256 x pos_dim)",
            table,
            vocab * codec_dim * 4,
            table == vocab * codec_dim * 4,
        ),
    ]
    per_seed, load = _time_arms(arms, batches, repeats, steps, warmup)
    resolution = _resolution(per_seed, KRONECKER_RUNTIME.comparisons)
    notes = [
        _timing_note(repeats, steps, warmup, load),
        *(_resolution_note(row) for row in resolution),
        f"bytes: the paper's on-the-fly module keeps {paper:,} bytes (V = {vocab:,}, "
        f"P = {pos_dim}), petra's {ours:,} (plus a {fingerprint}-byte tokenizer fingerprint); "
        f"the precomputed table takes {table:,} bytes (V x D float32, D = {codec_dim}): "
        f"{table / paper:.0f} times the paper's buffer",
        "equal embeddings before timing: on the first batch's tokens the reference arms "
        "differ from petra's by at most "
        + ", ".join(f"{gap:.1e} ({label})" for label, gap in gaps.items()),
        f"lm: Shakespeare blocks of {block} tokens (GPT-2 tokenizer), batch {batch_size}, "
        "d = 128, 2 layers, 2 heads, untied Linear(d, V) head; the reference arms are petra's "
        "LM with its embedding replaced by the package's module (`ReferenceKronecker`); all "
        "three start from the same weights and see the same batches",
    ]
    return {**_result(arms, per_seed, checks, notes), "resolution": resolution}


# -- c) L-Transformer: encoder parameters and step time at p = 2, 4, 8 -----------------------

SPECTRAL_SLICES = (2, 4, 8)
HEAD_WIDTH = 64


def spectral_heads(dim: int, slices: int, head_width: int = HEAD_WIDTH) -> int:
    """Heads per slice (petra's spectral `n_heads` counts the heads of each slice) so that
    each head is `head_width` wide where the slice (m = dim / slices) allows, else one head
    of width m."""
    return max(1, (dim // slices) // head_width)


def _norm_params(module: nn.Module) -> int:
    """Parameters of the normalization layers in `module` (gains, and biases if any)."""
    return sum(
        p.numel()
        for m in module.modules()
        if isinstance(m, NORM_LAYERS)
        for p in m.parameters(recurse=False)
    )


def spectral_scaling(repeats: int = 3, steps: int = 10, quick: bool = False) -> dict:
    """Training-step time and encoder parameters of IMDB classifiers (bert-base-uncased,
    d = 256, 2 layers, reviews cut to 256 tokens, batch 32, learned embedding, mean pooling,
    linear head; `quick`: 32 tokens, batch 2) with the standard encoder (heads of
    width 64: 4 at d = 256) and the L-Transformer (DCT) at p = 2, 4, 8 slices, heads per slice
    as `spectral_heads` (width 64 where the slice allows: at d = 256, 2 heads per slice at
    p = 2, 1 at p = 4, and at p = 8 one head of width 32).

    Checks (exact facts, from the modules): for each p, the spectral encoder's parameters
    enc_p against enc_std / p, holding when |enc_p - enc_std / p| is at most the standard
    encoder's normalization parameters (the theorem's "up to norms": matrices scale by
    exactly 1/p, while the norm gains of p slices of width m add up to d, as in the standard
    encoder); and that the matrices alone (encoder minus norms) are exactly 1/p."""
    from petra.tasks.classify import ClassifyData, ClassifyTask

    dim, batch_size, max_length, warmup = (256, 2, 32, 1) if quick else (256, 32, 256, 2)
    layers, heads = 2, max(1, dim // HEAD_WIDTH)
    task = ClassifyTask(
        ClassifyData(
            dataset="imdb",
            max_length=max_length,
            max_train_examples=batch_size * 64,
            max_eval_examples=1,
        ),
        seed=0,
    )
    base = dict(dim=dim, n_layers=layers, n_heads=heads, max_len=max_length)
    configs = {"standard": (base, f"standard encoder, {heads} head(s) of width {dim // heads}")}
    head_notes = []
    for p in SPECTRAL_SLICES:
        n_heads = spectral_heads(dim, p)
        width = dim // p // n_heads
        configs[f"p{p}"] = (
            {**base, "backbone": "spectral", "slices": p, "n_heads": n_heads},
            f"L-Transformer (DCT), p = {p} slices of width {dim // p}, {n_heads} head(s) of "
            f"width {width} per slice",
        )
        head_notes.append(f"p = {p}: {n_heads} of width {width}")
    arms = {}
    for label, (settings, what) in configs.items():
        model = _seeded_model(task, **settings)
        report = model.param_report()
        norms = _norm_params(model.backbone)
        params = {
            **report,
            "encoder_norm_params": norms,
            "encoder_matrix_params": report["encoder"] - norms,
        }
        arms[label] = Arm(f"IMDB classifier, d = {dim}, {what}", model, task, params)
    standard = arms["standard"].params
    checks = []
    for p in SPECTRAL_SLICES:
        spectral = arms[f"p{p}"].params
        expected = standard["encoder"] / p
        checks.append(
            _check(
                f"p={p}: encoder params within the standard encoder's norm params of enc_std / p",
                spectral["encoder"],
                expected,
                abs(spectral["encoder"] - expected) <= standard["encoder_norm_params"],
            )
        )
        matrices = standard["encoder_matrix_params"] / p
        checks.append(
            _check(
                f"p={p}: encoder matrix params (norms excluded) = standard's / p exactly",
                spectral["encoder_matrix_params"],
                matrices,
                spectral["encoder_matrix_params"] == matrices,
            )
        )
    batches = _batches(task, batch_size, warmup + repeats * steps)
    per_seed, load = _time_arms(arms, batches, repeats, steps, warmup)
    notes = [
        _timing_note(repeats, steps, warmup, load),
        f"heads: the standard encoder has {heads} head(s) of width {dim // heads}; petra's "
        "spectral n_heads counts the heads of each slice, chosen so that each keeps heads of "
        f"width {HEAD_WIDTH} where its width m = d / p allows, else one head of width m: "
        + "; ".join(head_notes),
        f"imdb: {len(task.train_dataset)} training reviews (seeded subset), cut to "
        f"{max_length} bert-base-uncased tokens, batches of {batch_size} grouped by length "
        "(the task's sampler); every arm has the same learned V x d embedding and linear head",
    ]
    return _result(arms, per_seed, checks, notes)
