"""The registry of paper claims that `petra reproduce` runs.

A claim names the paper and where in it the claim is made, quotes the paper's figure, and
gives petra's protocol at CPU scale: arms (each an ordinary `petra train` run: a task, a
preset file in `petra/configs/` and `--set` values), the comparisons to report (arm a, the
paper's method, against arm b, its baseline, paired by seed), what differs from the paper,
and the plots. Claims that analyse trained models (spelling, norms, geometry) reuse another
claim's runs (`runs_of`); claims that measure speed or sizes have a `measure` function
instead of arms, whose repeats stand in for seeds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from petra.embeddings import KroneckerEmbedding, size_for_budget
from petra.reproduce.stats import contrast_problem
from petra.tasks.settings import embedding_changes

PETE = "PETE (arXiv 2505.02266)"
KRONECKER = "Kronecker embeddings (arXiv 2605.29459)"
LTRANSFORMER = "L-Transformer (arXiv 2603.05727)"


@dataclass(frozen=True)
class Arm:
    """One training protocol; run once per seed as `petra train TASK --preset PRESET` with its
    `overrides` (typed changes `{"model.embedding": "kronecker", "train.lr": 0.001}`, see
    `petra.tasks.settings`). `init_from` names an arm of the same claim whose model (same
    seed) this one starts from (`--init`). `grid` lists, per setting, the values to choose
    among (their product is swept on the first seed and the best point by the claim's
    `selection` kept for every seed)."""

    label: str
    description: str
    task: str
    preset: str
    overrides: Mapping[str, object] = field(default_factory=dict)
    init_from: str | None = None
    grid: Mapping[str, tuple] = field(default_factory=dict)


@dataclass(frozen=True)
class Selection:
    """How an arm's `grid` point is chosen: the final value of `metric`, a metric of held-out
    data that the claim never reports (e.g. "heldout/spearman"), best by `better`."""

    metric: str
    better: str = "higher"
    why: str = ""


@dataclass(frozen=True)
class Comparison:
    """Arm `a` (the paper's method) against arm `b` on `metric`, paired by seed: the
    difference a - b, or 100 (a / b - 1) % when `relative`. `better` says which sign favours
    a; `test` is "superior" (a better than b), "non_inferior" (a no worse than b by more
    than `margin`, in the difference's units), "inferior" (a trails b, where the paper has
    it so) or "small_drop" (a trails b, by less than `margin`: see `stats.verdict`). `paper`
    quotes the paper's figures; `paper_difference` is the paper's own a - b
    in the same units, whose sign petra's is compared with. `floor` is the lowest value the
    metric can take where b could sit (e.g. 0 % of neighbours), for a metric where lower is
    better: a comparison whose b is at it in every seed is not testable
    (`stats.NOT_TESTABLE`: a cannot come in below b). Where higher is better, a b at the
    floor is beatable, so a floor is refused there. `minus` names two more arms (c, d): the
    comparison is then a contrast, (a - b) - (c - d) per seed, whether a gap changes from
    one setting to another (e.g. a drop at one width that closes at another)."""

    name: str
    metric: str
    a: str
    b: str
    better: str
    test: str = "superior"
    margin: float | None = None
    relative: bool = False
    paper: str | None = None
    paper_difference: float | None = None
    floor: float | None = None
    minus: tuple[str, str] | None = None

    def __post_init__(self):
        problem = contrast_problem(vars(self))
        if problem:
            raise ValueError(f"comparison {self.name!r}: {problem}")
        if self.floor is not None and self.better != "lower":
            raise ValueError(
                f"comparison {self.name!r}: a floor makes b unbeatable only where lower is "
                f"better (better={self.better!r}): a b at the floor of a higher-is-better "
                "metric can still be beaten"
            )


@dataclass(frozen=True)
class StoredAs:
    """Today's metric names that begin with `today` were stored by an earlier registry entry
    as `stored` + the rest, for `why`: read so only from a file of that entry, whose
    `protocol` text is this one."""

    today: str
    stored: str
    why: str
    protocol: str


@dataclass(frozen=True)
class Joint:
    """A claim that holds only where each of the named `comparisons` holds (e.g. a direction
    on both of two pair sets): its verdict is `stats.joint_verdict` of theirs."""

    name: str
    comparisons: tuple[str, ...]


@dataclass(frozen=True)
class Claim:
    """One claim of a paper (what it says, and where) and petra's protocol to test it: the
    `arms` to train and the `comparisons` between them, or the claim whose runs it analyses
    (`runs_of` + `analysis`), or a `measure` function; what differs from the paper and the
    plots. `get_claim(id)` looks one up; `CLAIMS` holds them all."""

    id: str
    order: int
    title: str
    paper: str
    where: str
    paper_figure: str
    protocol: str
    differences: tuple[str, ...]
    paper_scale: str  # what it would take to test the claim at the paper's scale
    comparisons: tuple[Comparison, ...]
    arms: tuple[Arm, ...] = ()
    runs_of: str | None = None  # the claim whose runs this one analyses
    analysis: str | None = None  # petra.reproduce.analyses function: (runs, seeds) -> result
    measure: str | None = None  # petra.reproduce.measures function: (repeats, quick) -> result
    settings: Mapping[str, object] = field(default_factory=dict)  # set on every arm, any preset
    quick: Mapping[str, object] = field(default_factory=dict)  # the short budget of --quick
    plots: tuple[dict, ...] = ()
    notes: tuple[str, ...] = ()
    seeds: int | None = None  # a fixed count (e.g. repeats of a measurement), else --seeds
    selection: Selection | None = None  # how the arms' grids are chosen
    metrics: tuple[str, ...] = ()  # shown per arm beside the compared ones
    joint: tuple[Joint, ...] = ()  # claims that hold only where several comparisons hold
    # a prefix of today's metric names that an earlier entry's runs stored under another,
    # for reading their files (`earlier_entry`)
    stored_as: StoredAs | None = None

    def arm(self, label: str) -> Arm:
        return next(arm for arm in self.arms if arm.label == label)


def _sizes(dim: int, layers: int, heads: int) -> dict[str, int]:
    return {"model.dim": dim, "model.n_layers": layers, "model.n_heads": heads}


# -- PETE -------------------------------------------------------------------------------

# Each arm is set up as the paper's official code sets up its arm: the learned baseline reads
# dropout(RMSNorm(E[id])) and has dropout 0.1 in its blocks (the paper: "a dropout probability
# of 0.1 (yielded best results)"); the Fourier arm reads RMSNorm(T + R T + b) and has no
# dropout ("Fourier embedding omits dropout"). The controls at Fourier's budget are set up as
# the arm they are compared with (the norm on their token vectors, no dropout).
_LEARNED_SETUP = {
    "model.embedding": "learned",
    "model.embedding_norm": True,
    "model.embedding_dropout": 0.1,
    "model.dropout": 0.1,
}
_FOURIER_SETUP = {
    "model.embedding": "fourier",
    "model.embedding.refine_bias": True,
    "model.embedding.final_norm": True,
}
_CONTROL_SETUP = {"model.embedding_norm": True}

# Settings are chosen per arm on held-out data, never on STS-B dev (the reported split): 20 %
# of STS-B train (1,150 of 5,749 pairs, the same for every arm and seed) is set aside and
# scored zero-shot (Table 1, whose protocol never trains on STS-B) or after fine-tuning on the
# other 80 % (Table 2).
_HELDOUT = {"data.sts_heldout": 0.2}


def _selection(metric: str) -> Selection:
    """The grid point with the highest final held-out `metric` (the claim's own metric)."""
    return Selection(
        f"heldout/{metric}",
        why=(
            f"each arm's grid point is the one with the highest final {metric.capitalize()} "
            "on the held-out 20 % of STS-B train, run on the first seed; every seed then runs "
            "that point; STS-B dev, the reported split, plays no part in the choice"
        ),
    )


_NLI_LRS = {"train.lr": (0.0003, 0.001, 0.003)}
# Table 1's own grid reaches one step lower: its first choices (seed 0) landed on 3e-4, the
# grid's lowest point, for four of the five arms chosen before this point was added
_ZERO_SHOT_LRS = {"train.lr": (0.0001, 0.0003, 0.001, 0.003)}
# and the 2-layer arms' one step lower again: the 2 x 512 arms both chose 1e-4, the lowest
# point, on seed 0; then the Fourier one chose 3e-5, the new lowest point (held-out 65.67
# against 65.10 at 1e-4), so the grid of both reaches 1e-5. The 2 x 256 arms, added later,
# sweep this grid from their first run.
_ZERO_SHOT_LRS_2_LAYERS = {"train.lr": (0.00001, 0.00003, *_ZERO_SHOT_LRS["train.lr"])}

_PETE_DATA = (
    "data: the paper trains on the entailment subsets of SNLI + MultiNLI (its text: about 200k "
    "samples; the two train splits hold about 314k entailment pairs); offline only SNLI dev + "
    "test exist (6,697 entailment pairs). 3,616 of the 6,513 bert-base-uncased pieces of "
    "STS-B dev (18.1 % of its tokens) never occur in them: a learned table keeps those rows "
    "at their initialization, while a computed embedding still moves them. The "
    "`pete-paper` preset has the paper's settings (lr 2e-5, 1,000 warmup steps, linear decay, "
    "batch 128, max length 128, 122,700 steps) for a user with the full data: `--preset "
    "pete-paper --set train.lr=2e-05 --set data.nli_files=PATHS` (the lr given, none is "
    "chosen)"
)


def _lrs(values) -> str:
    return ", ".join(f"{lr:.0e}".replace("e-0", "e-") for lr in values)


def _pete_budget(grid: dict, wider: dict | None = None, wider_arms: str = "") -> str:
    """What differs in the NLI stage's budget, naming the lr grid the claim sweeps (and the
    points of `wider`, the grid of `wider_arms`, beyond it)."""
    beyond = [lr for lr in wider["train.lr"] if lr not in grid["train.lr"]] if wider else []
    besides = f" (the {wider_arms} arms also {_lrs(beyond)})" if beyond else ""
    return (
        "budget: 600 steps of 64 pairs (about 5.7 epochs of the 6,697 pairs), max length 48, "
        f"cosine schedule with 5 % warmup, lr chosen per arm from {{{_lrs(grid['train.lr'])}}}"
        f"{besides} on held-out STS-B train; the paper: 122,700 steps of 128 at lr 2e-5 for "
        "both arms (linear decay, 1,000 warmup steps)"
    )


_PETE_CODE = (
    "official code, not repeated by petra: in the version with the CUDA kernel the paper "
    "describes ('a custom CUDA kernel that fuses normalization and Fourier expansion'), "
    "the Fourier features normalize ids by the sequence length (max_seq_len - 1) instead of "
    "V - 1, so that model has about 127 distinct input vectors (petra: x = 2 id / V - 1, its "
    "default; the paper's 2 id / (V - 1) - 1 would give ids 0 and V - 1 the same features), "
    "and its Fourier model computes the blocks' feed-forward output and discards it (those "
    "weights never train); a later version (src/pete.py in HenryNdubuaku/pete) normalizes by "
    "V - 1, as the paper, and still discards it. It mean-pools over padding (petra: over "
    "real tokens); one version of its NLI loader has the entailment filter commented out, so "
    "every label is a positive (petra: entailment pairs, as the paper's text says); a later "
    "version's evaluator (src/benchmark.py) casts the STS-B gold scores to integers (its "
    "loader keeps them as floats, as petra does)"
)
_PETE_MODEL = (
    "model: as the official code, the learned arm reads dropout(RMSNorm(E[id])) and the "
    "Fourier arm RMSNorm(T + R T + b); dropout 0.1 in the learned arm only, as the paper's "
    "text says (its main.py's default is 0.2; its Table 2-era code also dropped the Fourier "
    "model's features); petra's "
    "block dropout also acts inside the feed-forward, the official code's does not. petra's "
    "blocks are pre-norm with a GeGLU feed-forward and rotary positions (the paper's text "
    "names GeGLU, expansion 4); the official learned model's blocks are post-norm, with a GELU "
    "MLP of width 512 in one stored version of its code and a GeGLU of expansion 4 in "
    "another (the paper's counts, 8.9m and 24.3m for the learned 1 x 256 and 2 x 512 models, "
    "are the GeGLU version's with its pooler), its Fourier model's post-norm with a "
    "feed-forward whose output is discarded. No dense+tanh "
    "pooler, so the totals are below the paper's counts (1,184,256 Fourier / 8,939,776 "
    "learned at 1 layer, d=256)"
)

# PETE's Fourier refinement at 1 layer, d = 256 is a d^2 = 65,536-parameter matrix; the
# controls at that budget over BERT's vocabulary (V = 30,522), each sized by its own knob
_FOURIER_BUDGET = 256 * 256


def _at_fourier_budget(kind: str) -> dict[str, object]:
    sizing = size_for_budget(kind, 30522, 256, _FOURIER_BUDGET)
    return {
        "model.embedding": kind,
        **dict(embedding_changes(sizing.options)),
        **_CONTROL_SETUP,
    }


def _nli_arm(label: str, description: str, setup: dict, size, grid: dict = _NLI_LRS) -> Arm:
    return Arm(label, description, "nli-sts", "pete", {**setup, **_sizes(*size)}, grid=grid)


_TABLE1_MARGIN = (
    "Parity margin, set from the paper before running: Fourier may trail learned by at most 2.5"
    " Spearman points at every size. The paper's abstract claims 'competitive performance' "
    "and its text calls the two-layer models 'comparable' (gaps 0.96 at 2 x 256 and 0.14 at "
    "2 x 512), while it reports its 1-layer Fourier models 2.08 (d=256) and 2.29 (d=512) "
    "behind and calls models of fewer than two layers 'under-parameterized'. 2.5 is the "
    "smallest round margin that counts the paper's own 1-layer results as competitive, and "
    "one standard serves every size; so the margin does not tell what the paper calls "
    "comparable from what it calls under-parameterized: a 'holds' says Fourier trails by "
    "less than 2.5 points, and the interval's lower end says by how much it may. The "
    "direction column says separately whether petra's sign is the paper's and whether the "
    "paper's own a - b lies inside petra's interval. The margin sits close to the paper's "
    "1-layer gap: at the spread of an earlier entry's seeds (sd about 0.5) three seeds give "
    "an interval about 1.2 either side of the mean, so even a result equal to the paper's "
    "-2.08 would be inconclusive at 2.5; read that row's verdict with its direction cell."
)

_TABLE1_SIZES = (
    "Sizes: Table 1 has four; the 2 x 256 arms were added after the other arms' 3-seed results "
    "were seen, because the paper's text names 2 x 256 with 2 x 512 as the sizes where "
    "Fourier is 'comparable'; their margin (the same 2.5), their lr grid (the 2 x 512 arms' "
    "six points) and their comparison were fixed before any of their runs (committed as "
    "964037d, on a side branch merged into main, before the first of their run records). "
    "The 1 x 512 arms, Table 1's last row (Fourier 75.21 against learned 77.50, one of the "
    "two sizes the paper calls under-parameterized), were added after all of those results, "
    "to complete the table: the same margin and the 1-layer arms' four-point lr grid, fixed "
    "before any of their runs (on a side branch, as the 2 x 256 arms); then, when the "
    "Fourier arm chose that grid's lowest point, 1e-4 (held-out Spearman 65.95 against 65.75 "
    "at 3e-4), both arms' grids took the 2-layer arms' two lower points (1e-5, 3e-5) before "
    "any other seed's run finished (its seed-1 run, under way, was stopped)."
)

_TABLE1_READ_AFTER = (
    "Read after the runs, not registered: in Pearson (shown in the arms table, not tested) "
    "Fourier - learned is -1.92 [-3.74, -0.11] at 1 x 256, the paper's sign (-2.26) resolved; "
    "-1.05 [-2.34, +0.24] at 2 x 256 (paper -0.87); and -0.38 [-1.81, +1.05] at 2 x 512, "
    "where the paper has Fourier ahead (+0.15). In Spearman the 2 x 512 interval rules out a "
    "Fourier deficit beyond 1.70 points, less than the paper's 1-layer gaps, and the 2 x 256 "
    "one beyond 2.44, just inside the margin; at a 1-point margin both would be "
    "inconclusive. The spread of these runs' Spearman differences is sd 0.73, 0.59 and 0.61 "
    "at 1 x 256, 2 x 256 and 2 x 512 (intervals of +-1.82, +-1.46 and +-1.51 at 3 seeds)."
)

PETE_TABLE1 = Claim(
    id="pete-sts-zero-shot",
    order=1,
    title="PETE: zero-shot STS-B after contrastive NLI training, Fourier against learned",
    paper=PETE,
    where="Table 1",
    paper_figure=(
        "STS-B validation Spearman: Fourier 74.93 vs learned 77.01 (1 layer, d=256); 76.38 vs "
        "77.34 (2 layers, d=256); 77.40 vs 77.54 (2 layers, d=512); heads = layers; the "
        "learned arm ahead at every size in Spearman (in Pearson, Fourier is ahead at 2 x 512: "
        "77.11 vs 76.96); the text: 'at two layers/heads with dimensions of 256 or 512, Fourier "
        "embedding converges to performance levels comparable to a standard transformer'"
    ),
    protocol=(
        "nli-sts (InfoNCE on SNLI dev+test entailment pairs, masked mean pooling), scored "
        "zero-shot on STS-B dev (Spearman and Pearson x 100); bert-base-uncased tokenizer; "
        "heads = layers; each arm's token vectors set up as the official code sets them up "
        "(the norm, the refinement's bias, dropout; the rest as under what differs); lr chosen "
        "per arm on held-out STS-B train; preset `pete`"
    ),
    paper_scale=(
        "The paper's data and budget: ~314k SNLI + MultiNLI entailment pairs and 122,700 steps "
        "of 128 at lr 2e-5; with the data at hand, `petra reproduce pete-sts-zero-shot --preset"
        " pete-paper --set train.lr=2e-05 --set data.nli_files=SNLI_TRAIN,MNLI_TRAIN` runs "
        "this protocol with the paper's settings (a GPU run)."
    ),
    differences=(
        _PETE_DATA,
        _pete_budget(_ZERO_SHOT_LRS, _ZERO_SHOT_LRS_2_LAYERS, "2-layer"),
        _PETE_MODEL,
        _PETE_CODE,
        "selection: the paper uses one lr for both arms and states no held-out split; here "
        "each arm's lr is chosen on 20 % of STS-B train (1,150 pairs), never on STS-B dev. The "
        "official trainer keeps the checkpoint with the best mean of Pearson and Spearman on "
        "STS-B dev (src/trainer.py, save_best_model), so its reported scores may be chosen on "
        "the split they are reported on; petra scores the last step. Seed 0 both chooses the "
        "lr (on held-out STS-B train) and is reported (on dev): the chosen lr's seed-0 dev "
        "score may carry a little of the choice's luck, alike for every arm",
        "evaluation: STS-B dev (1,500 pairs), the paper's 'STS-B validation', cosine of the "
        "mean-pooled vectors; the official code scores tanh(Linear(mean over every position, "
        "padding included)), its dev loader shuffled with drop_last (at batch 128, a "
        "different 1,408 of the 1,500 pairs at each evaluation), in fp16",
        "training recipe: the official code initializes its learned table as nn.Embedding's "
        "default, N(0, 1) (padding row 0 at zero); petra's learned table starts at N(0, "
        "0.02^2), the same after the RMSNorm in direction, but at the same lr Adam's steps "
        "move it about 50 times further for its scale (each arm's lr is chosen on held-out "
        "data, which can take up part of this); in a 600-step run this is more likely to "
        "help the learned arm than to hold it back. The official loss sums the two InfoNCE "
        "directions with a learnable temperature from 0.07, unclamped; petra averages them, "
        "from 0.05, clamped. The official code trains in fp16 mixed precision without "
        "gradient clipping; petra in fp32, clipping at 1.0",
    ),
    settings=_HELDOUT,
    selection=_selection("spearman"),  # Table 1 reports Spearman
    metrics=("pearson",),
    arms=(
        _nli_arm(
            "learned-1x256", "learned, 1 layer, d=256", _LEARNED_SETUP, (256, 1, 1), _ZERO_SHOT_LRS
        ),
        _nli_arm(
            "fourier-1x256", "Fourier, 1 layer, d=256", _FOURIER_SETUP, (256, 1, 1), _ZERO_SHOT_LRS
        ),
        _nli_arm(
            "learned-budget-1x256",
            "learned, factorized to the 65,536 parameters of Fourier's refinement matrix "
            "(rank 2: a floor), RMSNorm, 1 layer, d=256",
            _at_fourier_budget("learned"),
            (256, 1, 1),
            _ZERO_SHOT_LRS,
        ),
        _nli_arm(
            "dhe-budget-1x256",
            "DHE (hashed code, no id order) at the 65,536 parameters of Fourier's refinement "
            "matrix, RMSNorm, 1 layer, d=256",
            _at_fourier_budget("dhe"),
            (256, 1, 1),
            _ZERO_SHOT_LRS,
        ),
        _nli_arm(
            "learned-1x512",
            "learned, 1 layer, d=512",
            _LEARNED_SETUP,
            (512, 1, 1),
            _ZERO_SHOT_LRS_2_LAYERS,
        ),
        _nli_arm(
            "fourier-1x512",
            "Fourier, 1 layer, d=512",
            _FOURIER_SETUP,
            (512, 1, 1),
            _ZERO_SHOT_LRS_2_LAYERS,
        ),
        _nli_arm(
            "learned-2x256",
            "learned, 2 layers, d=256",
            _LEARNED_SETUP,
            (256, 2, 2),
            _ZERO_SHOT_LRS_2_LAYERS,
        ),
        _nli_arm(
            "fourier-2x256",
            "Fourier, 2 layers, d=256",
            _FOURIER_SETUP,
            (256, 2, 2),
            _ZERO_SHOT_LRS_2_LAYERS,
        ),
        _nli_arm(
            "learned-2x512",
            "learned, 2 layers, d=512",
            _LEARNED_SETUP,
            (512, 2, 2),
            _ZERO_SHOT_LRS_2_LAYERS,
        ),
        _nli_arm(
            "fourier-2x512",
            "Fourier, 2 layers, d=512",
            _FOURIER_SETUP,
            (512, 2, 2),
            _ZERO_SHOT_LRS_2_LAYERS,
        ),
    ),
    comparisons=(
        Comparison(
            "Fourier vs learned, 1 layer, d=256",
            "spearman",
            "fourier-1x256",
            "learned-1x256",
            "higher",
            "non_inferior",
            2.5,
            paper="74.93 - 77.01 = -2.08",
            paper_difference=-2.08,
        ),
        Comparison(
            "Fourier vs learned at Fourier's embedding budget (rank 2: a floor), 1 layer, d=256",
            "spearman",
            "fourier-1x256",
            "learned-budget-1x256",
            "higher",
        ),
        Comparison(
            "Fourier vs DHE at the same budget (a hashed code and a deep MLP), 1 layer, d=256",
            "spearman",
            "fourier-1x256",
            "dhe-budget-1x256",
            "higher",
        ),
        Comparison(
            "Fourier vs learned, 1 layer, d=512 (arms added after the other arms' results)",
            "spearman",
            "fourier-1x512",
            "learned-1x512",
            "higher",
            "non_inferior",
            2.5,
            paper="75.21 - 77.50 = -2.29",
            paper_difference=-2.29,
        ),
        Comparison(
            "Fourier vs learned, 2 layers, d=256 (arms added after the other arms' results)",
            "spearman",
            "fourier-2x256",
            "learned-2x256",
            "higher",
            "non_inferior",
            2.5,
            paper="76.38 - 77.34 = -0.96",
            paper_difference=-0.96,
        ),
        Comparison(
            "Fourier vs learned, 2 layers, d=512",
            "spearman",
            "fourier-2x512",
            "learned-2x512",
            "higher",
            "non_inferior",
            2.5,
            paper="77.40 - 77.54 = -0.14",
            paper_difference=-0.14,
        ),
        Comparison(
            "Fourier 2 layers, d=512 vs learned 1 layer, d=256: equal total parameters "
            "(petra: 8,654,337 and 8,863,233)",
            "spearman",
            "fourier-2x512",
            "learned-1x256",
            "higher",
            paper="77.40 - 77.01 = +0.39 (both 8.9m)",
            paper_difference=0.39,
        ),
    ),
    quick={"train.steps": 60, "train.eval_every": 60, "data.max_train_pairs": 2000},
    plots=(
        {
            "kind": "curve",
            "series": "train/loss",
            "arms": [
                "learned-1x256",
                "fourier-1x256",
                "learned-1x512",
                "fourier-1x512",
                "learned-2x256",
                "fourier-2x256",
                "learned-2x512",
                "fourier-2x512",
            ],
            "ylabel": "InfoNCE training loss",
            "title": "Training loss of each arm at its chosen lr (every seed)",
        },
    ),
    notes=(
        _TABLE1_MARGIN,
        _TABLE1_SIZES,
        _TABLE1_READ_AFTER,
        "Not in the paper: two controls at Fourier's own embedding budget (the 65,536 "
        "parameters of its refinement matrix; its bias and norm gain add 512, the controls' "
        "norm gain 256), each kind sized by `petra.embeddings.size_for_budget`, each with an "
        "RMSNorm on its token vectors and no dropout, as the Fourier arm: a factorized "
        "learned table, at this budget of rank 2 (after the norm every token vector lies on "
        "one curve in a plane, so tokens differ by one angle: the norm, petra's choice for "
        "every control, takes one of the table's two degrees of freedom): a floor, a sanity "
        "check rather than evidence about smaller tables, not a fair smaller "
        "table (tensor-train, QR and hashed n-gram tables at this budget are in petra's "
        "budget benchmark, not in this claim), and DHE, "
        "which also computes a vector from a fixed code of the id but with a hashed code (no "
        "id order) and a deep MLP: it tests those two differences together, not the id order "
        "alone.",
        "Equal total parameters: the paper's Discussion says that 'in configurations with "
        "equal overall parameters, PETE even outperforms the traditional transformer' "
        "(paper/main.tex); its Table 1 holds one such pair, Fourier 2 x 512 against learned "
        "1 x 256, both 8.9m, 77.40 against 77.01. The comparison tests that pair as a "
        "superiority claim; the two arms differ in depth and width as well as embedding. The "
        "paper's own 0.39 from one run each could not show superiority either: an "
        "inconclusive verdict here does not contradict it.",
        "The lr grids were extended where a choice landed on their lowest point: 1e-4 was "
        "added after the first seed-0 choices landed on 3e-4 for four of the five arms chosen "
        "by then, and 3e-5 for the two 2 x 512 arms after both chose 1e-4 in an earlier set of "
        "runs (lost with their machine before petra committed run records: today's choices "
        "are made afresh on the whole grid); then 1e-5 for both 2 x 512 arms, after the "
        "Fourier one chose 3e-5, the new lowest point (held-out 65.67 against 65.10 at 1e-4), "
        "before any other seed ran. An arm that "
        "still chooses its lowest point is marked in the sweep table as chosen at the grid's "
        "edge: a lower lr (the paper trains at 2e-5) is untested for it.",
    ),
)

# Table 2's sizes: widths chosen so that petra's Fourier models have about the paper's counts
_TABLE2_SIZES = {"58k": (58, 1, 1), "396k": (108, 2, 2), "1.58M": (220, 2, 2), "3.68M": (276, 3, 3)}
_TABLE2_PAPER = {"58k": 69.0, "396k": 78.0, "1.58M": 79.7, "3.68M": 81.7}  # Pearson
_BERT_TINY = 74.3  # the paper's BERT-Tiny row (official report), Pearson

# Fine-tuning on the 4,599 STS-B train pairs outside the held-out 20 %, batch 64 (71 steps an
# epoch), with the paper's loss 1 - Pearson; lr and epochs chosen on the held-out pairs
_STS_EPOCH = 4599 // 64
_STS_GRID = {"train.lr": (2e-05, 0.0001, 0.0005), "train.steps": (2 * _STS_EPOCH, 8 * _STS_EPOCH)}
_STS_SETUP = {
    "data.sts_loss": "pearson",
    "train.batch_size": 64,
    "train.eval_every": 2 * _STS_EPOCH,
    "train.checkpoint_every": 200,
}


def _table2_arms() -> tuple[Arm, ...]:
    arms = []
    shapes = {f"fourier-{k}": (_FOURIER_SETUP, v) for k, v in _TABLE2_SIZES.items()}
    shapes["learned-bert-tiny"] = (_LEARNED_SETUP, (128, 2, 2))
    for label, (setup, (dim, layers, heads)) in shapes.items():
        kind = "learned" if setup is _LEARNED_SETUP else "Fourier"
        shape = f"{kind}, d={dim}, {layers} layer(s), {heads} head(s)"
        arms.append(_nli_arm(f"{label}-nli", f"{shape}: NLI stage", setup, (dim, layers, heads)))
        arms.append(
            Arm(
                label,
                f"{shape}: fine-tuned on STS-B train",
                "sts",
                "pete",
                _STS_SETUP,
                init_from=f"{label}-nli",
                grid=_STS_GRID,
            )
        )
    return tuple(arms)


def _table2_comparisons() -> tuple[Comparison, ...]:
    against_tiny = []
    for size, pearson in _TABLE2_PAPER.items():
        gap = round(pearson - _BERT_TINY, 2)
        against_tiny.append(
            Comparison(
                f"Fourier {size} vs learned BERT-Tiny shape"
                + (" (the paper has it trailing)" if gap < 0 else ""),
                "pearson",
                f"fourier-{size}",
                "learned-bert-tiny",
                "higher",
                "inferior" if gap < 0 else "superior",
                paper=f"{pearson} - {_BERT_TINY} = {gap:+.1f} (PETE: dev; BERT-Tiny: GLUE test)",
                paper_difference=gap,
            )
        )
    stages = [
        Comparison(
            f"fine-tuning helps: {label} against its NLI stage",
            "pearson",
            label,
            f"{label}-nli",
            "higher",
        )
        for label in [f"fourier-{size}" for size in _TABLE2_SIZES] + ["learned-bert-tiny"]
    ]
    return (*against_tiny, *stages)


PETE_TABLE2 = Claim(
    id="pete-sts-finetune",
    order=2,
    title="PETE: fine-tuning on STS-B train from the NLI model, by model size",
    paper=PETE,
    where="Table 2",
    paper_figure=(
        "STS-B Pearson / Spearman after fine-tuning: PETE (validation set, the best epoch on "
        "it kept) 58k 69.0 / 69.5, 396k 78.0 / 78.0, 1.5M 79.7 / 79.7, 3.6M 81.7 / 81.9; "
        "BERT-Tiny (pretrained, the official report's GLUE test-set scores, 4M) 74.3 / 73.6: "
        "the 58k model trails BERT-Tiny, the 396k one and larger beat it"
    ),
    protocol=(
        "nli-sts as in pete-sts-zero-shot at each size (lr chosen on held-out STS-B train), "
        "then sts: fine-tuning on 80 % of STS-B train with `--init` from that NLI model and "
        "the paper's loss 1 - Pearson over the batch, lr and epochs chosen on the other 20 %; "
        "Pearson and Spearman x 100 on STS-B dev; a learned baseline of BERT-Tiny's shape "
        "(d=128, 2 layers, 2 heads) trained by the same protocol; preset `pete`"
    ),
    paper_scale=(
        "The paper's NLI stage (see pete-sts-zero-shot, `--preset pete-paper`), its Table 2 "
        "model family (Linear-SiLU-Linear projections of width d, not in petra) and its "
        "fine-tuning (lr 2e-5, batch 256, the epoch best on STS-B dev kept); the BERT rows "
        "would need pretrained cross-encoders scored on the GLUE test server."
    ),
    differences=(
        _PETE_DATA,
        _pete_budget(_NLI_LRS),
        "fine-tuning: 1 - Pearson over batches of 64 on 4,599 STS-B train pairs (the other 1,150"
        " held out), lr from {2e-5, 1e-4, 5e-4} and 2 or 8 epochs chosen on the held-out pairs "
        "(cosine schedule, 5 % warmup); the official code: lr 2e-5, batch 256, its epochs a "
        "command-line setting (default 5 in main.py; the paper states none) on all of "
        "STS-B train, keeping the epoch best on the mean of Pearson and Spearman on STS-B "
        "dev, the split it reports",
        _PETE_MODEL,
        _PETE_CODE + ". That describes Table 1's model: the TAN code behind Table 2 "
        "(src/tan.py) normalizes ids by the vocabulary size and uses its feed-forward output",
        "model: the paper's Table 2 models are another family (every projection Linear-SiLU-"
        "Linear of width d, its text: feed-forward width d/4), the official configurations "
        "Atomic (1 layer, d=64), Nano (2 x 128: 396,928 parameters), Micro (2 x 256: "
        "1,580,288) and Milli (1 x 512: 3,678,720) (main.py, info.txt); petra trains its own "
        "Fourier encoder at widths giving about the same counts (58k: d=58, 1 layer; 396k: "
        "d=108, 2 layers; 1.58M: d=220, 2 layers; 3.68M: d=276, 3 layers where Milli has 1; "
        "heads = layers)",
        "sizes: each PETE size is tested against one learned model of BERT-Tiny's shape "
        "(about 4.4M parameters), so the arms differ in size as well as embedding: that is "
        "Table 2's point (small PETE models against a larger baseline), not a same-size test",
        "baseline: the paper's BERT rows are GLUE-report scores of pretrained cross-encoders; "
        "here the baseline is a learned-table model of BERT-Tiny's shape trained from scratch "
        "by the same protocol, so it is not the paper's row: the comparisons test the paper's "
        "direction (58k behind, 396k and up ahead), not its numbers",
        "sequence length: pairs are cut at 48 tokens in the NLI stage and 64 in fine-tuning "
        "(the `pete` preset)",
    ),
    settings=_HELDOUT,
    selection=_selection("pearson"),  # Table 2 reports Pearson first; the loss is 1 - Pearson
    metrics=("spearman",),
    arms=_table2_arms(),
    comparisons=_table2_comparisons(),
    quick={"train.steps": 40, "train.eval_every": 40, "data.max_train_pairs": 2000},
    plots=(
        {
            "kind": "versus",
            "metric": "pearson",
            "x_param": "total",
            "arms": [f"fourier-{size}" for size in _TABLE2_SIZES] + ["learned-bert-tiny"],
            "xlabel": "trainable parameters",
            "title": "STS-B dev Pearson after fine-tuning",
        },
        {
            "kind": "curve",
            "series": "train/loss",
            "arms": [f"fourier-{size}" for size in _TABLE2_SIZES] + ["learned-bert-tiny"],
            "ylabel": "1 - Pearson over the batch",
            "title": "Fine-tuning loss of each arm at its chosen lr and epochs (every seed)",
        },
    ),
    notes=(
        "Directions, set from the paper before running: its 58k model trails BERT-Tiny by 5.3 "
        "Pearson (a test that Fourier 58k trails the baseline), its 396k, 1.5M and 3.6M models"
        " lead it by 3.7, 5.4 and 7.4 (superiority tests).",
        "The stage comparisons (each fine-tuned model against the NLI model it started from) "
        "are petra's check that its fine-tuning does what the paper's does: raise STS-B dev "
        "Pearson. Each arm is scored on STS-B dev at its last step; nothing is kept by its dev "
        "score.",
        "Reading the rows against the paper: its a - b subtracts a pretrained BERT-Tiny's GLUE "
        "test score from PETE's dev scores (best dev epoch kept), while petra's b is a "
        "BERT-Tiny-shaped learned model trained here exactly as the Fourier arms are (NLI "
        "stage, then STS-B), both scored on dev at their last step. The paper's finding is a "
        "crossover (58k behind, 396k and larger ahead); where petra's Fourier arms trail at "
        "every size, the 58k row agrees with the paper's direction but says nothing of the "
        "crossover. The arms table shows where a gap opens: the NLI-stage rows against the "
        "fine-tuned ones.",
        "Grids at their edge: every fine-tuned arm may choose the longer of two schedules (8 "
        "epochs; the official code's default is 5, the paper states none), and an lr chosen "
        "at either end of its grid, in "
        "the NLI stage or in fine-tuning, may be under-tuned (the grids were not extended); "
        "the sweep table names each such edge, for settings of 3 or more values.",
    ),
)

PETE_SPEED = Claim(
    id="pete-step-time",
    order=3,
    title="PETE: Fourier embeddings train faster than a learned table",
    paper=PETE,
    where="abstract and discussion ('trains faster')",
    paper_figure=(
        "trains faster; Table 1's whole-run training times, Fourier vs learned: 37.88 vs 48.48 "
        "min at 1 layer, d=256 (-21.9 %); 1.349 vs 1.688 h at 1 x 512 (-20.1 %); 1.009 vs "
        "1.322 h at 2 x 256 (-23.7 %); 2.27 vs 2.982 h at 2 x 512 (-23.9 %)"
    ),
    protocol=(
        "one process, the whole nli-sts training step (forward, InfoNCE loss, backward, "
        "clipping, AdamW) of the 1-layer, d=256 model, Fourier and learned interleaved over "
        "repeats; the median ms per step of each repeat"
    ),
    paper_scale=(
        "The paper's model sizes and batch on the paper's hardware (a GPU), both arms timed in "
        "the same run."
    ),
    differences=(
        "hardware: the machine named under 'As run', float32; the paper's times are whole "
        "runs on one RTX 4090 in mixed precision, with a custom CUDA kernel for the Fourier "
        "features",
        "what is timed: one training step here, the whole run (including evaluation and data "
        "loading) in the paper",
        "batch: 64 pairs of at most 48 tokens here, 128 of 128 in the paper. The learned "
        "table's optimizer work does not grow with the tokens of a batch while the encoder's "
        "does, so a smaller batch likely makes the Fourier arm's saving larger here (reckoned, "
        "not measured)",
        "the Fourier arm's work: petra computes the features and the refinement once per "
        "distinct id of the batch and gathers the rows back to the positions; the official "
        "code computes them at every position (its features in a CUDA kernel). The learned "
        "arm's step includes AdamW and clipping over its whole V x d table, which the Fourier "
        "arm does not have: much of the difference is reckoned to be that optimizer work (not "
        "measured apart), which the paper's whole-run times include too",
    ),
    measure="pete_step_time",
    seeds=6,  # 3 rounds of the 2 orders of a Williams design for 2 arms
    comparisons=(
        Comparison(
            "Fourier vs learned, time per step",
            "step_ms",
            "fourier",
            "learned",
            "lower",
            relative=True,
            paper="37.88 vs 48.48 min a run = -21.9 %",
            paper_difference=-21.9,
        ),
    ),
)

# -- Kronecker --------------------------------------------------------------------------

METHOD_ARM, BASELINE_ARM = "kronecker-untied", "learned-tied"  # the paper's arm and baseline
# D = 256 P, the width of Kronecker's code at its default pos_dim: its projection has d D
# parameters at any d, which an n-gram table of D rows matches
_KRONECKER_POS_DIM = KroneckerEmbedding.option({}, "pos_dim")
_KRONECKER_CODE_WIDTH = 256 * _KRONECKER_POS_DIM
# the controls: the short name their per-seed counts carry -> (arm label, how rows name it)
_CONTROLS = {
    "tied": ("learned-tied", "learned (tied)"),
    "untied": ("learned-untied", "learned (untied)"),
    "ngram": ("ngram-untied", "hashed trigrams (untied)"),
}
SPELLING_CONTROLS = {short: label for short, (label, _) in _CONTROLS.items()}
CONTROL_NAMES = dict(_CONTROLS.values())  # arm label -> its name in a comparison
# every arm of the LM claim, the order of its curves
_KRONECKER_ARMS = ("learned-tied", METHOD_ARM, "learned-untied", "ngram-untied")
SPELLING_CATEGORIES_CLAIMED = 10  # "wins or ties 10 of 11 categories"

# Sizes, budget and data are the runs' settings, which the report's As-run part gives from
# what the runs recorded (the `kronecker-lm` preset's unless set at run time): not repeated
# here, where a --set would leave them wrong.
_KRONECKER_DIFFERENCES = (
    "size: the As-run model (dim, n_layers, n_heads, block_size) against the paper's "
    "124M-parameter GPT-2",
    "budget: the As-run steps of batch_size x block_size tokens against the paper's 2.5B tokens",
    "data: the As-run corpus (the offline Shakespeare by default: of its 42 works, "
    "valid_fraction (5 %: 2 works) are held out for validation, chosen by the run's seed, so "
    "the arms of one seed are evaluated on the same works, max_eval_blocks random blocks of "
    "them) against the paper's web text; the As-run tokenizer (by default GPT-2's, V = "
    "50,257, as in the paper)",
    "model: petra's decoder (rotary positions, RMSNorm, a GeGLU feed-forward) against the "
    "paper's GPT-2 (learned positions, LayerNorm, GELU); AdamW with weight decay 0.01 on "
    "matrices (nanoGPT's default is 0.1) at the As-run lr, which was set once in the "
    "`kronecker-lm` preset and not chosen on any split; there is no test split, so the "
    "validation loss is both what is watched and what is reported",
)

KRONECKER_LM = Claim(
    id="kronecker-lm-loss",
    order=4,
    title="Kronecker: LM validation loss against a tied learned baseline",
    paper=KRONECKER,
    where="LM experiment (main results)",
    paper_figure="-2.5 +- 0.2 % validation loss at 124M / 2.5B tokens; ~1.43x fewer steps",
    protocol=(
        "lm on the As-run corpus and tokenizer, with the As-run model size, batch, steps and "
        "lr (the `kronecker-lm` preset's unless set at run time; cosine schedule); validation "
        "loss every eval_every steps; arms: "
        "Kronecker with its own untied head (the paper's arm), learned with a tied head (the "
        "paper's baseline), and learned with an untied head (control: the same untied V x d "
        "head as the Kronecker arm, so it says whether a gain is the byte code or the extra "
        "head), and hashed character trigrams with an untied head and Kronecker's parameter "
        "count (control: another code of the token's string, learned per n-gram, so it says "
        "whether a gain is the byte-by-position code or any code of the spelling); preset "
        "`kronecker-lm`"
    ),
    paper_scale=(
        "A 124M-parameter GPT-2 (d=768, 12 layers, 12 heads) trained on 2.5B tokens of web text"
        " per arm, several seeds (the paper's +- 0.2 % is a spread over runs): GPU-days, not a "
        "CPU session."
    ),
    differences=_KRONECKER_DIFFERENCES,
    arms=(
        Arm(
            "learned-tied",
            "learned, tied head (paper's baseline)",
            "lm",
            "kronecker-lm",
            {"model.embedding": "learned"},
        ),
        Arm(
            "kronecker-untied",
            "Kronecker, untied head (paper's arm)",
            "lm",
            "kronecker-lm",
            {"model.embedding": "kronecker"},
        ),
        Arm(
            "learned-untied",
            "learned, untied head (control)",
            "lm",
            "kronecker-lm",
            {"model.embedding": "learned", "model.tie_embeddings": False},
        ),
        Arm(
            "ngram-untied",
            f"hashed character trigrams, {_KRONECKER_CODE_WIDTH:,} shared rows (Kronecker's d x "
            f"{_KRONECKER_CODE_WIDTH:,} parameters at pos_dim {_KRONECKER_POS_DIM}), untied head "
            "(control)",
            "lm",
            "kronecker-lm",
            {
                "model.embedding": "ngram",
                "model.embedding.rows": _KRONECKER_CODE_WIDTH,  # R d = Kronecker's W: d x 256 P
                "model.tie_embeddings": False,
            },
        ),
    ),
    settings={"data.tokenizer": "gpt2"},
    analysis="lm_steps_to_target",
    comparisons=(
        Comparison(
            "Kronecker (untied) vs learned (tied), validation loss",
            "loss",
            "kronecker-untied",
            "learned-tied",
            "lower",
            relative=True,
            paper="-2.5 +- 0.2 %",
            paper_difference=-2.5,
        ),
        Comparison(
            "Kronecker (untied) vs learned (untied control), validation loss",
            "loss",
            "kronecker-untied",
            "learned-untied",
            "lower",
            relative=True,
        ),
        Comparison(
            "Kronecker (untied) vs hashed trigrams (untied control), validation loss",
            "loss",
            "kronecker-untied",
            "ngram-untied",
            "lower",
            relative=True,
        ),
        Comparison(
            "steps to reach the tied learned arm's final loss",
            "steps_to_target",
            "kronecker-untied",
            "learned-tied",
            "lower",
            relative=True,
            paper="~1.43x fewer (-30 %)",
            paper_difference=-30.1,  # 1 / 1.43 - 1
        ),
    ),
    quick={"train.steps": 30, "train.eval_every": 10, "data.max_eval_blocks": 16},
    plots=(
        {
            "kind": "curve",
            "series": "eval/loss",
            "arms": list(_KRONECKER_ARMS),
            "reference_final_of": "learned-tied",
            "ylabel": "validation loss",
            "title": "LM validation loss (line: the tied learned arm's final loss)",
        },
    ),
    notes=(
        "steps_to_target: the first evaluated step at which an arm's validation loss is at "
        "or below the tied learned arm's final loss of the same seed. Evaluations are 50 "
        "steps apart, so the steps are multiples of 50 and seeds often agree exactly (a "
        "narrow interval then reflects that grid as much as the seeds). An arm that never "
        "reaches it gets the lower bound steps + 50 (flagged in its per-seed values), which "
        "can only understate how much later it is.",
        "Reading the rows together: against the tied table the gain mixes the byte code with "
        "the untied head Kronecker's arm carries; the untied learned control isolates the "
        "code, and the hashed-trigram control asks whether any learned code of the spelling "
        "does as well. The runs are short: where every arm's loss is still falling at the "
        "last step (its final loss its lowest), the tied arm reaches its own final loss only "
        "at the last evaluation, and the steps comparison measures how much earlier the others "
        "get there within this budget.",
    ),
)

# The spelling probe's metrics: (metric, name, better, relative, the paper's figure on its
# pairs, Kronecker against its BPE arm, a stock tied table, and that figure as a - b). The
# cosine and log-prob figures are read from the reference repository's published output for
# the paper's Tables 6-7 (probes/data/robustness_results.json, overall means).
_SPELLING_METRICS = (
    ("top1_agreement_pct", "top-1 agreement (%)", "higher", False, "55.5 - 47.3 = +8.2 pts", 8.2),
    ("top1_kappa", "top-1 kappa (agreement above chance, petra's own)", "higher", False, None,
     None),
    ("kl_mean", "KL", "lower", True, "-7.6 %", -7.6),
    ("hidden_cosine_mean", "final-hidden cosine", "higher", False, "0.879 vs 0.857 = +0.022",
     0.022),
    ("logprob_drop_mean", "log-prob drop", "lower", False, "1.058 vs 1.199 = -0.141", -0.141),
)  # fmt: skip
_SPELLING_SETS = {
    "paper": "paper's pairs",
    "brown-inside": "Brown-made pairs, typo inside",
    "brown": "Brown-made pairs, typo last",
}
# The joint readings: the paper's direction with the typo inside the prompt, as in its pairs,
# and at every place (the typo-last set too, where the last token is mostly the one changed)
_SPELLING_JOINTS = {
    "on both sets with the typo inside": ("paper", "brown-inside"),
    "on all three sets": ("paper", "brown-inside", "brown"),
}


def _spelling_name(pairs: str, control: str, what: str) -> str:
    """`paper's pairs: Kronecker vs learned (tied), KL`: a spelling comparison's name."""
    return f"{pairs}: Kronecker vs {control}, {what}"


def _spelling_comparisons() -> tuple[Comparison, ...]:
    """Kronecker against each learned control on each metric, the paper's pairs beside the
    Brown-made ones; the paper's figure only where it has one (its pairs, the tied table)."""
    return tuple(
        Comparison(
            _spelling_name(name, description, what),
            f"{pairs}/{metric}",
            "kronecker-untied",
            control,
            better,
            relative=relative,
            paper=paper if (pairs, control) == ("paper", "learned-tied") else None,
            paper_difference=difference if (pairs, control) == ("paper", "learned-tied") else None,
        )
        for control, description in CONTROL_NAMES.items()
        for metric, what, better, relative, paper, difference in _SPELLING_METRICS
        for pairs, name in _SPELLING_SETS.items()
    )


def _spelling_joint() -> tuple[Joint, ...]:
    """The paper's direction against its baseline (the tied table), per metric and joint
    reading (`_SPELLING_JOINTS`): it holds only if it holds on each of the reading's sets."""
    return tuple(
        Joint(
            f"{what}: Kronecker vs learned (tied), {reading}",
            tuple(
                _spelling_name(_SPELLING_SETS[name], CONTROL_NAMES[BASELINE_ARM], what)
                for name in sets
            ),
        )
        for _, what, *_ in _SPELLING_METRICS
        for reading, sets in _SPELLING_JOINTS.items()
    )


KRONECKER_SPELLING = Claim(
    id="kronecker-spelling",
    order=5,
    title="Kronecker: next-token stability under typos",
    paper=KRONECKER,
    where="spelling robustness evaluation (Section 6.11)",
    paper_figure="top-1 kept 55.5 % vs 47.3 %; KL -7.6 %; wins or ties 10 of 11 categories",
    protocol=(
        "`petra probe spelling` on the models of kronecker-lm-loss, seed by seed, on three pair "
        "sets: the paper's 110 pairs (`--pairs paper`, the default: 10 in each of 11 "
        "categories, a 1-2 character typo in a content word inside the prompt) and two sets "
        "of 200 pairs made from Wikipedia's common misspellings in Brown sentences: cut one, "
        "two or three items after the word, in turn (`--pairs brown-inside`: the typo inside "
        "the prompt, where 97 of the paper's 110 place it) and cut right after it (`--pairs "
        "brown`: the typo ends the prompt). On each set, top-1 agreement, KL(clean "
        "|| typo), final-hidden cosine and the log-prob drop of the clean top-1 token, "
        "Kronecker against each control (the tied and untied learned tables, the hashed "
        "trigrams), and per category the paper's count: categories where Kronecker's top-1 "
        "agreement is above (win) or equal to (tie) the control's. A quick first look takes "
        "5 paper pairs of each category and 50 of each Brown-made set"
    ),
    paper_scale=(
        "The models of kronecker-lm-loss at the paper's scale (124M parameters, 2.5B tokens "
        "of web text), probed on the same three pair sets."
    ),
    differences=(
        *_KRONECKER_DIFFERENCES,
        "pairs: the paper's 110 as published (one, 'The sun rises in the', has no typo: "
        "full agreement for every model); the Brown-made sets are petra's, a second look with "
        "other typos inside the prompt, and a third with the typo as the prompt's last word",
        "prompts: most of the paper's ask for world knowledge (capitals, sums, colours) that a "
        "small model trained on a small corpus (Shakespeare by default) lacks, so its clean "
        "top-1 is mostly a function word: the figures say how far a typo moves the "
        "prediction, not whether an answer survives",
        "controls: the paper has one baseline (BPE, a stock tied table) and one checkpoint "
        "pair; petra compares with a tied and an untied learned table, paired over seeds with "
        "intervals, and counts categories per seed",
        "depth and scale: Kronecker's read vectors are far larger than a learned table's (about "
        "sqrt(d) in norm, as the reference code's z-normalised code and 1/sqrt(D) projection "
        "give: the method, not a petra choice); in these 2-layer models they dominate the "
        "residual stream at the last position, where the paper's 12 layers add more of their "
        "own, so the split between the typo-last and typo-inside sets may not carry over",
        "figures: the paper's hidden-cosine and log-prob figures are the overall means of its "
        "reference repository's published output for Tables 6-7 (robustness_results.json)",
    ),
    runs_of="kronecker-lm-loss",
    analysis="spelling",
    comparisons=_spelling_comparisons(),
    joint=_spelling_joint(),
    # Before this entry probed two pair sets, petra probed one, its default pairs, made by the
    # code that makes today's Brown-made pairs (`default_pairs`, renamed `brown_pairs` with
    # its body unchanged), and stored their metrics without the `brown/` prefix.
    stored_as=StoredAs(
        "brown/",
        "",
        "the earlier entry probed one pair set, its default pairs, made by the code that "
        "makes today's Brown-made pairs",
        "`petra probe spelling` with the default pairs (Wikipedia misspellings in prompts) on "
        "the models of kronecker-lm-loss, seed by seed",
    ),
    metrics=(
        "paper/top1_chance_pct",
        "brown-inside/top1_chance_pct",
        "brown/top1_chance_pct",
        "paper/last_token_cosine_mean",
        "brown-inside/last_token_cosine_mean",
        "brown/last_token_cosine_mean",
        "paper/categories_won_or_tied_vs_tied",
        "paper/categories_won_or_tied_vs_untied",
        "paper/categories_won_or_tied_vs_ngram",
    ),
    notes=(
        "Two joint readings, metric by metric, against the paper's baseline (the tied "
        "table): with the typo inside the prompt (the paper's 110 pairs and the Brown-made "
        "typo-inside ones: the claim as the paper's pairs pose it), and on all three sets "
        "(the typo-last set too). A direction on one set only is a property of those pairs, "
        "not a robustness of the byte code.",
        "Kronecker's final state leans on the vector it reads for the last token "
        "(`SET/last_token_cosine_mean`, arms table: the cosine of the clean prompt's final "
        "hidden state with that vector), far more than the untied learned and trigram arms' "
        "(the tied arm's value is read through its tied head: it is the normalised logit of "
        "repeating the last token, not a leaning); its read vectors are also far larger "
        "(kronecker-norm-drift's consumed_norm_final). The leaning is measured; that it "
        "drives the gaps is inferred. It would cut both ways: a typo in the last token moves "
        "the prediction more (the typo-last set), a typo elsewhere moves the final state "
        "less. So the final-hidden cosine rows, an outcome the leaning inflates or deflates, "
        "are as confounded where they favour Kronecker (typo inside) as where they go against "
        "it (typo last). The typo-inside reading was added after a review found the "
        "end-of-prompt effect; the all-sets reading, the one used before, is kept beside it.",
        "The typo-inside Brown set is near its ceiling on top-1 (kept in most pairs by every "
        "arm): against the tied table nothing resolves there, while against the untied "
        "controls most rows resolve, in Kronecker's favour (see the comparisons).",
        "Categories: the paper's 'wins or ties 10 of 11' counts, per category, Kronecker's "
        "top-1 agreement against its BPE arm's, a win a higher rate and a tie an equal one "
        "(its published per-category rates give 7 wins, 3 ties, 1 loss). "
        "`paper/categories_won_or_tied_vs_tied`, `..._vs_untied` and `..._vs_ngram` are that "
        "count per seed (the Kronecker arm's row of the arms table); the notes below give the "
        "win-tie-loss counts of all four metrics on every set, a noise reference for the "
        "count (an arm against itself at another seed) and the count pooled over seeds.",
        "Top-1 agreement is also high for a model that predicts the same few tokens after "
        "every prompt, or that a typo pushes to its default token. The kappa rows correct "
        "for that in the manner of Cohen's kappa with a leave-one-out chance (petra's own "
        "control; the reference probe has none): chance (`SET/top1_chance_pct`, arms table) "
        "is how often a clean prompt's top-1 equals another pair's typo top-1, and kappa = "
        "(agreement - chance) / (1 - chance), "
        "0 at chance. Prompts that share an answer count towards chance too, so kappa can "
        "understate a model that answers them alike.",
    ),
)

# "Stays near 1.0", as a band: the Kronecker projection's mean row norm (1.0 at its
# N(0, 1/sqrt(D)) initialization) within 1.0 +- 0.10 at every evaluation. The paper gives no
# band; 10 % is petra's reading of "near", fixed in this registry entry after the earlier runs
# (a +37 % drift) were seen.
NORM_BAND = 0.10


def _drift(name: str, metric: str, control: str, label: str) -> Comparison:
    return Comparison(
        f"Kronecker vs learned ({name}), {label}", metric, METHOD_ARM, control, "lower"
    )


KRONECKER_NORMS = Claim(
    id="kronecker-norm-drift",
    order=6,
    title="Kronecker: the projection's row norm stays near 1 while a learned table drifts",
    paper=KRONECKER,
    where="norm analysis",
    paper_figure="learned embedding norms drift; the Kronecker projection norm stays near 1.0",
    protocol=(
        "two norms of each kronecker-lm-loss run, drift = 100 |final / step-0 - 1| %: the mean "
        "row norm of the trained matrix (learned: its V rows; Kronecker: the projection's d "
        "rows, 1.0 at init), logged at every evaluation from step 0; and the mean norm of the "
        "token vectors the model reads, E(v) over the distinct ids of the training split "
        "(each once, not weighted by frequency), at step 0 (the model rebuilt from the run's "
        "settings and seed) and at the end. Kronecker is compared with both learned arms "
        "(tied and untied); 'near 1.0' is checked as a band fixed after earlier runs were "
        f"seen: the projection's mean row norm within 1.0 +- {NORM_BAND} at every evaluation"
    ),
    paper_scale=(
        "The runs of kronecker-lm-loss at the paper's scale (2.5B tokens): a drift that grows "
        "with training may only show over the paper's budget."
    ),
    differences=(
        *_KRONECKER_DIFFERENCES,
        "the paper names no band for 'near 1.0' and no measure of the vectors the model "
        "reads; both are petra's (the band fixed after earlier runs, with a +37 % drift, "
        "were seen)",
    ),
    runs_of="kronecker-lm-loss",
    analysis="norm_drift",
    metrics=("row_norm_final", "consumed_norm_start", "consumed_norm_final"),
    comparisons=(
        _drift("tied", "row_norm_drift_pct", "learned-tied", "row-norm drift of the matrix"),
        _drift(
            "untied control", "row_norm_drift_pct", "learned-untied", "row-norm drift of the matrix"
        ),
        _drift(
            "tied",
            "consumed_norm_drift_pct",
            "learned-tied",
            "norm drift of the token vectors read",
        ),
        _drift(
            "untied control",
            "consumed_norm_drift_pct",
            "learned-untied",
            "norm drift of the token vectors read",
        ),
        Comparison(
            "Kronecker vs hashed trigrams (untied control), row-norm drift of the matrix",
            "row_norm_drift_pct",
            METHOD_ARM,
            "ngram-untied",
            "lower",
        ),
        Comparison(
            "Kronecker vs hashed trigrams (untied control), norm drift of the token vectors read",
            "consumed_norm_drift_pct",
            METHOD_ARM,
            "ngram-untied",
            "lower",
        ),
    ),  # fmt: skip
    plots=(
        {
            "kind": "curve",
            "series": "eval/embedding/matrix_row_norm_mean",
            "arms": list(_KRONECKER_ARMS),
            "ylabel": "mean row norm of the trained matrix",
            "title": "Norm drift",
        },
    ),
    notes=(
        "The two learned arms' matrix is their table, so for them the two norms differ only in "
        "the rows they average (all V, or the ids of the training split); for Kronecker the "
        "matrix is the d x D projection and the vectors read are W z(v). A learned table's "
        "matrix drift averages all V rows, of which only the ids of the training split get a "
        "gradient (about 19k of GPT-2's 50,257 on the default corpus): the untouched rows dilute "
        "it, which the drift of the vectors read does not.",
        "Percent drift compares each arm with its own start: the Kronecker projection's rows "
        "start at norm 1.0, a learned table's at about 0.23 (N(0, 0.02^2) in d = 128), so the "
        "same absolute growth is a smaller percentage for Kronecker. Read the band check (an "
        "absolute statement about the projection) before the comparisons.",
        "Weight decay bounds norm growth: these runs use 0.01 on matrices, nanoGPT's default "
        "is 0.1 (see What differs).",
    ),
)

KRONECKER_GEOMETRY = Claim(
    id="kronecker-typographic-clusters",
    order=7,
    title=(
        "Kronecker: trained tables retrieve typographic variants of a word, the byte code "
        "retrieves other words"
    ),
    paper=KRONECKER,
    where="Sections 6.1-6.4, cross-model embedding-geometry probe",
    paper_figure=(
        "SmolLM2-135M's trained table: 36 % of a probe word's 5 nearest tokens are its "
        "typographic variants (case, leading space); the byte code: 6 %; a random table: 0 % "
        "(reference output trained_probe_smollm2-135M.txt, mean of its 4 tabulated families)"
    ),
    protocol=(
        "`petra probe geometry`'s retrieval probe, its definitions read from the reference "
        "repository's published output (the script that wrote it is not published; its probe "
        "words in 6 families, 4 of them tabulated; a word of several tokens is the mean of "
        "their rows; the k nearest tokens by cosine, k = 5 and 10, the word's own token left "
        "out; a neighbour is "
        "typographic when it spells the word up to case and white space): typographic@5 and "
        "@10 of the trained tables of kronecker-lm-loss and of the same tables at step 0 (rebuilt "
        "from each run's settings and seed; `_gain` = trained minus step 0); beside them, "
        "without seeds, the pretrained tables of SmolLM2-135M and all-MiniLM-L6-v2 and the "
        "byte code of each vocabulary, probed by petra, and the reference's published figures"
    ),
    paper_scale=(
        "The paper probes public LMs' tables (SmolLM2-135M among them) and its 124M "
        "Kronecker model; its Kronecker column is the byte code itself, not a trained "
        "projection of it."
    ),
    differences=(
        *_KRONECKER_DIFFERENCES,
        "SmolLM2: the offline copy is SmolLM2-135M-Instruct as a 4-bit Q4_1 GGUF, "
        "dequantized; the reference probed the base model's own weights (its per-family "
        "figures are shown beside petra's)",
        "ties: cosines of the byte code tie often; petra counts a tie at the 5th place by its "
        "expectation under a random tie-break, the reference by its sort's order (a family's "
        "fraction can differ by one tied token in 25)",
        "random pairs: petra's own seeded draw of 10,000 pairs of ids; the reference's sampler "
        "is not published",
        "typographic@10 is Table 10's k on other words: the reference's layered_probe.py "
        "(whose output Table 10 prints) probes 6 families of 8 words (run, compute, nation, "
        "code, act, build), a word's vector its first token's row, centred cosines; petra's "
        "rows use the cross-model output's 4 tabulated families of 5 words, a word's vector "
        "the mean of its tokens' rows, uncentred cosines (centring left seed 0's figures as "
        "they were, a reviewer's check)",
        "the reference's probes/cross_model_probe.py, to which its README attributes Sections "
        "6.1-6.4, measures two other things, which petra does not run: the cosine of 12 "
        "near-spelling pairs (plural, typo, inflection, case) and the within / between "
        "cosine of 5 word clusters; petra's retrieval probe follows the published output "
        "trained_probe_*.txt instead, whose script is not published",
    ),
    runs_of="kronecker-lm-loss",
    analysis="typographic",
    metrics=(
        *(f"typographic_at_5_pct/{family}" for family in ("run", "compute", "magnet", "tion")),
        "init/typographic_at_5_pct",
        "typographic_at_5_pct_gain",
        "typographic_at_10_pct",
        "init/typographic_at_10_pct",
        "typographic_at_10_pct_gain",
    ),
    notes=(
        "The claim the cross-model probe makes is a fully trained BPE table against the byte "
        "code itself; petra checks it on SmolLM2-135M (a model the paper probes), in the "
        "checks. For its own trained models the paper gives one figure (Section 6.8, Table 10, "
        "printed by the reference's probes/layered_probe.py): at the raw embedding, 'loose "
        "morph@10' 0.97 for its 124M Kronecker model against 0.90 for its tied BPE baseline; "
        "loose morph@10 is 1 - typographic@10, so the paper's a - b is about 3 - 10 = -7 "
        "points of typographic@10. petra's comparisons count typographic@10 on the cross-model "
        "probe's words (typographic@5, that output's k, beside it): Table 10's k, but not its "
        "words or vectors (what differs). petra's learned arms "
        "sit at the metric's floor (typographic@5 and @10 0 in every seed, at step 0 and after "
        "training: a 0.8M-token run leaves a learned table near its random start), so their "
        "rows cannot show the paper's direction; the Kronecker arm's table is the trained "
        "projection of the byte code, which starts above 0. A row whose per-seed differences "
        "are all equal has an interval of width 0: a floor, not certainty; where the learned "
        "arm sits at 0 in every seed the row is not testable (its floor). The direction "
        "'lower is better' is petra's reading: the paper presents Table 10 as what its "
        "layers keep of a table's spelling structure, not as a contest.",
        "Against the hashed trigrams the level row compares the two codes as much as their "
        "training: both start above 0 (init/typographic_at_10_pct, arms table) and the gap is "
        "mostly there at step 0. The change-in-training row asks whether training moves "
        "Kronecker's table away from typographic variants more than the trigrams' (trained "
        "minus step 0, each arm from its own start).",
        "Typographic@5 and 'morphological@5' in the reference's output are one number: a "
        "neighbour that is not a typographic variant counts as morphological, so the second "
        "is 1 minus the first.",
        "The ratio in-family / random-pair cosine that the reference publishes is not used: "
        "once centred, its denominator is about 0 (SmolLM2: +0.0005 published, -0.0008 in "
        "petra's draw), so its size and even its sign follow sampling noise. The results "
        "JSON keeps the in-family and random-pair cosines.",
    ),
    comparisons=(
        Comparison(
            "Kronecker vs learned (tied), typographic@10 of the cross-model words (%)",
            "typographic_at_10_pct",
            "kronecker-untied",
            "learned-tied",
            "lower",
            paper="Kron 3 vs BPE 10 typographic@10 (Table 10) = -7 pts",
            paper_difference=-7.0,
            floor=0.0,
        ),
        Comparison(
            "Kronecker vs learned (untied control), typographic@10 of the cross-model words (%)",
            "typographic_at_10_pct",
            "kronecker-untied",
            "learned-untied",
            "lower",
            floor=0.0,
        ),
        Comparison(
            "Kronecker vs hashed trigrams (untied control), typographic@10 of the cross-model "
            "words (%)",
            "typographic_at_10_pct",
            "kronecker-untied",
            "ngram-untied",
            "lower",
            floor=0.0,
        ),
        Comparison(
            "Kronecker vs hashed trigrams (untied control), change of typographic@10 in "
            "training (points)",
            "typographic_at_10_pct_gain",
            "kronecker-untied",
            "ngram-untied",
            "lower",
        ),
    ),
)

KRONECKER_RUNTIME = Claim(
    id="kronecker-runtime",
    order=8,
    title="Kronecker: a byte buffer instead of a table, at a negligible step overhead",
    paper=KRONECKER,
    where="runtime variant",
    paper_figure=(
        "buffer of V x (pos_dim + 2) bytes; a 'negligible' step overhead (DESIGN.md's account "
        "of the paper). The reference code says 'Slight per-step overhead (~1-4 ms at the "
        "scales tested in the paper)' (its embedding module's docstring) and '~1-4 ms / "
        "micro-batch (scatter_add)' against '~0 (just index_select)' for the cached table "
        "(its README); neither gives the step time that overhead is a share of"
    ),
    protocol=(
        "one process, the whole LM training step (GPT-2 vocabulary, d=128, 2 layers, block "
        "128, batch 16, untied head) of three arms from the same weights on the same "
        "batches: the paper's own on-the-fly codec (its reference package's dynamic, dense "
        "mode, kronecker-embeddings 0.1.1), the package's precomputed V x D codec table (the "
        "paper's baseline), and petra's sparse path (embedding_bag); 24 repeats of 10 steps, "
        "interleaved in the orders of a Williams design (each arm in each place, and after "
        "each other arm, equally often)"
    ),
    paper_scale=(
        "The paper's 124M model on a GPU, where a V x D table and the codec compete for memory "
        "bandwidth differently than on a CPU: the codec's share of a step there could be "
        "smaller or larger than here, and petra has not measured it."
    ),
    differences=(
        "hardware: the machine named under 'As run', float32, eager (no torch.compile, which "
        "could fuse the codec's scatter and normalization); model far smaller than the paper's",
        "the package's module sits in petra's LM through a thin wrapper (petra's id check, "
        "then the module's own forward), its outputs checked equal to petra's before timing",
        "petra's own path keeps the lengths as int32, V x (pos_dim + 4) bytes in all: "
        "distributed training broadcasts buffers, and neither gloo nor NCCL carries int16",
        "scale: the codec's cost a token is fixed by D = 256 x pos_dim = 4,096, while the rest "
        "of the step grows with the model: at 7.5M parameters here against the paper's 124M, "
        "the same codec is roughly 10 to 20 times as large a share of the step (reckoned from "
        "the parameter counts, not measured), so an overhead negligible at the paper's size "
        "can be a few per cent here; on a GPU the codec's memory-bound scatter runs beside "
        "compute-bound matrix products, so its share need not shrink with the parameter "
        "ratio. So a 'does not hold' here is about this scale only: divided by that 10 to 20 "
        "(which the GPU point just made need not allow), an overhead of a few per cent here "
        "would be under 1 % at 124M (a reckoning, not measured). The absolute ms a step are "
        "in the resolution notes; the reference's ~1-4 ms names neither its hardware nor its "
        "micro-batch, so the two do not compare",
        "the precomputed arm is the package's cached mode, the alternative its README sets "
        "against the dynamic one; it stands for the V x D table the paper's byte buffer "
        "replaces (the protocol's 'the paper's baseline')",
        "petra's sparse path embeds each distinct id of a batch once; the reference package's "
        "modules compute every position, as the paper's code does: the sparse path's gain "
        "is its gather and the deduplication together",
    ),
    measure="kronecker_codec_overhead",
    seeds=24,  # 4 rounds of the 6 orders of a Williams design for 3 arms
    comparisons=(
        Comparison(
            "paper's on-the-fly codec vs precomputed table, time per step (7.5M LM, CPU, "
            "petra's 1 % margin)",
            "step_ms",
            "reference-on-the-fly",
            "reference-precomputed",
            "lower",
            "non_inferior",
            1.0,
            relative=True,
            paper="negligible ('slight', ~1-4 ms a micro-batch: slower, size as a share not given)",
        ),
        Comparison(
            "petra's sparse path vs precomputed table, time per step (petra's own)",
            "step_ms",
            "petra-sparse",
            "reference-precomputed",
            "lower",
            "non_inferior",
            1.0,
            relative=True,
        ),
        Comparison(
            "petra's sparse path vs the paper's on-the-fly codec, time per step (petra's own)",
            "step_ms",
            "petra-sparse",
            "reference-on-the-fly",
            "lower",
            relative=True,
        ),
    ),
    notes=(
        "Direction: the reference code itself has the on-the-fly codec slower ('slight "
        "per-step overhead'), as petra finds; what is tested is its size. Margin: at most 1 % "
        "more per step than the precomputed table, petra's reading of 'negligible' (the "
        "reference's ~1-4 ms is not given as a share of a step). So a 'does not hold' here "
        "says the overhead exceeds 1 % at this scale (7.5M parameters, the CPU threads the "
        "timing note names, "
        "float32); the paper's scale is not tested. petra's sparse path never forms the dense "
        "N x D codec, so it is tested for being faster than the paper's on-the-fly codec "
        "(superiority, petra's own claim).",
        "Resolution: per comparison, the resolution notes below give the bound its test must "
        "clear (0, or the 1 % margin), the 95 % interval's half-width (its precision), the "
        "distance from the bound that these repeats clear about 80 % of the time, where the "
        "interval has not cleared it the repeats that would at the measured mean, for the "
        "parity test the repeats that would show the margin met were the arms equally fast, "
        "and the first and second halves of the repeats apart (drift over the measurement).",
    ),
)

# -- L-Transformer ----------------------------------------------------------------------

_LT_HYPERPARAMETERS = (
    "hyperparameters: the paper's are not public (only its abstract is); these are petra's: "
    "lr 1e-3, the training default, tuned for no arm"
)


def _spectral(slices: int, heads: int, extra: dict | None = None) -> dict[str, object]:
    return {"model.backbone": "spectral", "model.slices": slices, "model.n_heads": heads,
            **(extra or {})}  # fmt: skip


LT_IMDB = Claim(
    id="ltransformer-imdb",
    order=9,
    title="L-Transformer: IMDB at equal width, p = 2 and 4, scalings and an identity control",
    paper=LTRANSFORMER,
    where="abstract (IMDB)",
    paper_figure="parity or better at up to 75 % fewer encoder parameters",
    protocol=(
        "classify IMDB (25k train; 4,000 test reviews scored, a seeded sample per seed, the "
        "same for every arm), d=256, 2 layers, max "
        "length 256, batch 32, 300 steps, bert-base-uncased tokenizer; heads matched by head width "
        "(64: 4 heads standard, 2 per slice at p=2, 1 per slice at p=4); preset `lt-imdb`"
    ),
    paper_scale=(
        "The paper's width and hyperparameters for IMDB, which are not public (its abstract "
        "names no width for IMDB; its parity at 768 is AG News's); a user with them runs the "
        "same arms at `--set model.dim=...`."
    ),
    differences=(
        _LT_HYPERPARAMETERS,
        "budget: 300 steps of 32 reviews, 0.38 of an epoch of the 25,000 (no review is seen "
        "twice, which leaves little gap between training and test for a 'better "
        "generalization' to narrow; no accuracy on training reviews is measured); the "
        "machine is the one named under 'As run'",
        "model: d=256, 2 layers, reviews cut at 256 tokens, a learned embedding trained from "
        "scratch, mean pooling, petra's pre-norm blocks (RMSNorm, GeGLU, rotary positions); "
        "the paper's are not public",
        "frequency scaling: where it acts and its decay exponent are petra's (the paper's are "
        "not public): once, on the encoder's input, right after the learned embedding, where "
        "s_k multiplies slice k of M E and so can be folded into the embedding table. There "
        "it adds no function the unscaled model lacks and can act only through training (the "
        "decay arm is p=4 with slice k's embedding started at 1/(k+1) of the scale; AdamW, "
        "acting on the untransformed table through the DCT, and the global gradient clip then "
        "step it differently from the unscaled arm, not simply at 1/(k+1))",
        "evaluation: 4,000 of the 25,000 IMDB test reviews (a seeded sample, the same for "
        "every arm of a seed), to keep evaluation short",
    ),
    arms=(
        Arm("standard", "standard encoder", "classify", "lt-imdb", {"model.backbone": "standard"}),
        Arm("p2", "p=2, DCT, no scaling", "classify", "lt-imdb", _spectral(2, 2)),
        Arm("p4", "p=4, DCT, no scaling", "classify", "lt-imdb", _spectral(4, 1)),
        Arm(
            "p4-decay",
            "p=4, DCT, decay scaling s_k = (k + 1)^-1",
            "classify",
            "lt-imdb",
            _spectral(4, 1, {"model.freq_scaling": "decay"}),
        ),
        Arm(
            "p4-learned",
            "p=4, DCT, learned scaling",
            "classify",
            "lt-imdb",
            _spectral(4, 1, {"model.freq_scaling": "learned"}),
        ),
        Arm(
            "p4-identity",
            "p=4, identity transform (control)",
            "classify",
            "lt-imdb",
            _spectral(4, 1, {"model.transform": "identity"}),
        ),
    ),
    comparisons=(
        Comparison(
            "p=2 vs standard, accuracy",
            "accuracy",
            "p2",
            "standard",
            "higher",
            "non_inferior",
            1.0,
            paper="parity or better",
        ),
        Comparison(
            "p=4 vs standard, accuracy",
            "accuracy",
            "p4",
            "standard",
            "higher",
            "non_inferior",
            1.0,
            paper="parity or better",
        ),
        Comparison(
            "p=4: decay scaling vs none",
            "accuracy",
            "p4-decay",
            "p4",
            "higher",
            paper="frequency scaling 'improves generalization' (abstract)",
        ),
        Comparison(
            "p=4: learned scaling vs none",
            "accuracy",
            "p4-learned",
            "p4",
            "higher",
            paper="frequency scaling 'improves generalization' (abstract)",
        ),
        Comparison(
            "p=4: DCT vs identity transform, no worse (petra's own)",
            "accuracy",
            "p4",
            "p4-identity",
            "higher",
            "non_inferior",
            1.0,
        ),
        Comparison(
            "p=4: identity vs DCT transform, no worse (petra's own)",
            "accuracy",
            "p4-identity",
            "p4",
            "higher",
            "non_inferior",
            1.0,
        ),
    ),
    joint=(
        Joint(
            "p=4: DCT and identity transforms equivalent within 1 point (the spectral "
            "equivalence theorem's consequence: they differ only through the optimizer and the "
            "head's initial draw)",
            (
                "p=4: DCT vs identity transform, no worse (petra's own)",
                "p=4: identity vs DCT transform, no worse (petra's own)",
            ),
        ),
    ),
    settings={"data.dataset": "imdb"},
    quick={
        "train.steps": 30,
        "train.eval_every": 30,
        "data.max_train_examples": 2000,
        "data.max_eval_examples": 500,
    },
    plots=(
        {
            "kind": "versus",
            "metric": "accuracy",
            "x": {"standard": 1, "p2": 2, "p4": 4},
            "xlabel": "p (slices; 1 = standard)",
            "title": "IMDB accuracy against p",
        },
    ),
    notes=(
        "Parity margin: at most 1 accuracy point below the standard encoder (petra's: the "
        "abstract gives no figure).",
        "The learned scaling starts at 1 (no scaling) and, placed where it can be folded into "
        "the embedding (under 'What differs'), could only change how training moves; Adam "
        "moves a parameter by about the learning rate a step at most, and these 300 steps' "
        "rates sum to 0.15, so no scale could reach the decay arm's 1/4: by design that arm "
        "can hardly differ from plain p=4 (its scales end within 0.013 of 1 in every seed).",
        "'Holds' for p=2 and p=4 against the standard encoder is parity only: 'or better' is "
        "shown at neither p (p=2 +0.25 [-0.02, +0.53]). Not registered beforehand, from these "
        "runs: p=4 trails p=2, -0.53 [-0.90, -0.15] over the 5 seeds, its interval holding 0 "
        "without seed 1 or seed 2.",
        "Why 5 seeds (set before these runs): an earlier entry's 3-seed runs had p=4 - "
        "standard differences of -0.65, -0.15, -0.56 (sd 0.27), a 95 % interval of +-0.66 at "
        "3 seeds, its low end past the 1-point margin; 4 seeds give +-0.43.",
        "The identity control: with a learned embedding and a linear head after pooling, the "
        "DCT is absorbed by the embedding and its inverse by the head, so the theorem has the "
        "DCT and identity models differ only through the optimizer (AdamW is not rotation-"
        "invariant) and the head's initial draw (its uniform init is not, the embedding's "
        "normal one is): they are tested for equivalence within 1 point (each no worse than the "
        "other), petra's own test with petra's margin (an earlier entry's 3-seed runs had the "
        "DCT 0.43 points behind).",
    ),
)

_GAP_CLOSES = "the gap closes with width: p=4 - standard at d=768 against at d={}"
_WIDER_BASELINE = (
    "standard encoder, d=768 vs d=256 (petra's own: the wider baseline at most 1 point below "
    "the narrower)"
)

LT_AGNEWS = Claim(
    id="ltransformer-agnews",
    order=10,
    title="L-Transformer: AG News, a small drop at moderate width and parity at width 768",
    paper=LTRANSFORMER,
    where="abstract (AG News)",
    paper_figure=(
        "on AG News at moderate width a small accuracy decrease in exchange for a 4 times "
        "encoder reduction; at BERT-base width (d=768), performance returns to parity"
    ),
    protocol=(
        "classify AG News, bert-base-uncased tokenizer, 2 layers, max length 128, batch 32, "
        "400 steps, p=4 against the "
        "standard encoder at d=256 (moderate width), d=512 and d=768 (the paper's parity "
        "width), heads matched by head width (64: 4, 8 and 12 heads standard; 1, 2 and 3 per "
        "slice at p=4); preset `lt-agnews`"
    ),
    paper_scale=(
        "AG News's 120k-row train split (not offline here) and the paper's hyperparameters "
        "(not public), at the same widths."
    ),
    differences=(
        _LT_HYPERPARAMETERS + " and shared by every width",
        "budget: a few hundred steps (the machine is the one named under 'As run')",
        "data: offline only the official 7,600-row AG News TEST file exists; petra splits it "
        "into its own train and held-out parts (6,080 and 1,520 rows, stratified by class, "
        "a split of its own for each seed; one held-out row is 0.066 accuracy points), so "
        "these accuracies are not comparable with published AG News figures (120k train "
        "rows)",
        "width: the paper does not say which width is its moderate one; petra takes d=256, "
        "a third of BERT-base's 768, and tests d=512 as the other reading",
        "regime: 6,080 training rows for 400 steps of 32 (about 2.1 epochs), which every arm "
        "all but memorizes (seed 0's training loss ends below 0.1), at one lr for every width: "
        "a wider standard encoder need not score higher here (seed 0: 86.84 at d=512 against "
        "88.62 at d=256), so parity at d=768 can come from the baseline losing with width "
        "rather than p=4 gaining; the comparison of the standard encoder at 768 and 256, and "
        "the joint reading, would say which where they resolve",
        "budget: held-out accuracy is measured at steps 200 and 400 only, the lr annealed to "
        "near 0 at 400; between the two it still rose in every arm (by about 1.2 points in the "
        "standard arms and 0.7 to 0.95 in the p=4 ones, the mean over 8 seeds), so the "
        "verdicts are for this 400-step budget, not for converged models",
    ),
    arms=(
        Arm(
            "standard-256",
            "standard, d=256",
            "classify",
            "lt-agnews",
            {"model.backbone": "standard"},
        ),
        Arm("p4-256", "p=4, d=256", "classify", "lt-agnews", _spectral(4, 1)),
        Arm(
            "standard-512",
            "standard, d=512",
            "classify",
            "lt-agnews",
            {"model.backbone": "standard", "model.dim": 512, "model.n_heads": 8},
        ),
        Arm("p4-512", "p=4, d=512", "classify", "lt-agnews", _spectral(4, 2, {"model.dim": 512})),
        Arm(
            "standard-768",
            "standard, d=768",
            "classify",
            "lt-agnews",
            {"model.backbone": "standard", "model.dim": 768, "model.n_heads": 12},
        ),
        Arm("p4-768", "p=4, d=768", "classify", "lt-agnews", _spectral(4, 3, {"model.dim": 768})),
    ),
    comparisons=(
        Comparison(
            "p=4 vs standard, d=256",
            "accuracy",
            "p4-256",
            "standard-256",
            "higher",
            "small_drop",
            2.0,
            paper="a small drop at moderate width",
        ),
        Comparison(
            "p=4 vs standard, d=768",
            "accuracy",
            "p4-768",
            "standard-768",
            "higher",
            "non_inferior",
            1.0,
            paper="parity at d=768",
        ),
        Comparison(
            "p=4 vs standard, d=512 (a small drop: the other reading of 'moderate width')",
            "accuracy",
            "p4-512",
            "standard-512",
            "higher",
            "small_drop",
            2.0,
            paper="a small drop at moderate width",
        ),
        Comparison(
            "p=4 vs standard, d=512 (parity: petra's own)",
            "accuracy",
            "p4-512",
            "standard-512",
            "higher",
            "non_inferior",
            1.0,
        ),
        Comparison(
            "p=4 vs standard, d=256 (parity: petra's own, the mirror of the small drop)",
            "accuracy",
            "p4-256",
            "standard-256",
            "higher",
            "non_inferior",
            1.0,
        ),
        Comparison(
            _GAP_CLOSES.format(256),
            "accuracy",
            "p4-768",
            "standard-768",
            "higher",
            minus=("p4-256", "standard-256"),
            paper="a small drop at moderate width, parity at d=768: the gap closes",
        ),
        Comparison(
            _GAP_CLOSES.format(512) + " (the other reading of 'moderate width')",
            "accuracy",
            "p4-768",
            "standard-768",
            "higher",
            minus=("p4-512", "standard-512"),
            paper="a small drop at moderate width, parity at d=768: the gap closes",
        ),
        Comparison(
            _WIDER_BASELINE,
            "accuracy",
            "standard-768",
            "standard-256",
            "higher",
            "non_inferior",
            1.0,
        ),
        Comparison(
            "p=4, d=768 vs d=256 (petra's own: the wider p=4 at most 1 point below the narrower)",
            "accuracy",
            "p4-768",
            "p4-256",
            "higher",
            "non_inferior",
            1.0,
        ),
    ),
    joint=(
        Joint(
            "parity at d=768, the wider baseline at most 1 point below the narrower",
            ("p=4 vs standard, d=768", _WIDER_BASELINE),
        ),
        Joint(
            "the paper's AG News reading as a whole, at d=256: a small drop there, parity at "
            "d=768, and the gap closing between them",
            ("p=4 vs standard, d=256", "p=4 vs standard, d=768", _GAP_CLOSES.format(256)),
        ),
    ),
    settings={"data.dataset": "agnews"},
    quick={"train.steps": 30, "train.eval_every": 30, "data.max_train_examples": 1000},
    notes=(
        "Small-drop margin, fixed in this registry entry after the earlier runs of this "
        "claim were seen (no figure of the paper sets it): the abstract calls "
        "the moderate-width result 'a small accuracy decrease' and sets it apart from the "
        "'parity' it reports at d=768, with no figure for either. petra's parity margin is 1 "
        "accuracy point, so a drop the paper tells apart from parity yet calls small is read "
        "as more than 0 and less than 2 points (twice the parity margin): the claim holds if "
        "the whole 95 % interval of p=4 - standard lies inside (-2, 0), does not hold if it "
        "lies wholly above 0 (no drop) or wholly below -2 (a drop that is not small).",
        "What the seeds can show: the earlier d=256 runs' paired differences had a standard "
        "deviation of 0.70 points. At 3 seeds the 95 % interval is +-1.73 wide, more than "
        "half the 2-point band, so the test can only be inconclusive or not hold. Were the "
        "true drop 1 point (the band's middle), the interval would lie inside the band about "
        "45 % of the time at 5 seeds and 86 % at 8 (simulated at that spread); each end is "
        "cleared with 80 % power from 6 seeds (`stats.repeats_for_power`). Run `--seeds 8`.",
        "Parity margin (d=768, and petra's own d=256 and d=512 comparisons): at most 1 "
        "accuracy point below the standard encoder (petra's: the abstract gives no figure). "
        "The standard encoder at d=768 against d=256 uses the same margin (and p=4 at d=768 "
        "against d=256 likewise): the first joint reading counts parity at d=768 as the "
        "paper's only where the wider baseline is at most 1 point below the narrower.",
        "The paper's point is a contrast: a drop at moderate width that is gone at d=768. The "
        "small-drop and parity tests cannot show it apart (an interval inside (-1, 0) passes "
        "both), so it is tested directly: per seed, (p=4 - standard at d=768) - (p=4 - "
        "standard at d=256), a superiority test (the gap closes: more than 0); the second "
        "joint reading asks for the small drop, the parity and the closing together. Parity "
        "at d=256 (the small drop's mirror) shows whether the moderate width is at parity too.",
        "How to read them (written after the 8 seeds were read; the contrast it relies on was "
        "added before seeds 5-7): parity at d=768 is the paper's 'returns to "
        "parity' only where the gap-closing contrast holds (the parity tests at d=256 and "
        "d=512 say whether p=4 is at parity at every width); the small-drop band is open at "
        "0, so where the true gap is 0 no number of seeds makes it hold, and its interval's "
        "lower end bounds the drop instead.",
        "When they were added: the d=512 small drop, the standard encoder at d=768 against "
        "d=256 and the first joint reading after seed 0 at d=256 and d=512 had been read; the "
        "d=256 parity mirror, the two contrasts and p=4 across widths after seeds 0-4 (and "
        "seed 5 at d=256) had been read (seed 5's d=512 runs had finished, unread), "
        "with the entry's existing margins (1 point; 0 for the contrasts). At seeds 0-4 the "
        "p=4 - standard gaps were -0.20 (sd 0.60) at d=256, -0.07 (0.37) at d=512 and -0.43 "
        "(0.54) at d=768: the gap at d=768 no smaller than at d=256, and 8 seeds resolve a "
        "bound about 0.65 points away from the mean at that spread, so 'inconclusive' is "
        "the likely verdict of the small-drop tests.",
    ),
)

LT_SCALING = Claim(
    id="ltransformer-scaling",
    order=11,
    title=(
        "L-Transformer: encoder parameters 1/p (the paper's) and training-step time at p = 2, "
        "4, 8 (petra's own)"
    ),
    paper=LTRANSFORMER,
    where="abstract; spectral equivalence theorem",
    paper_figure="encoder parameters about 1/p of the dense ones; up to 75 % fewer at p = 4",
    protocol=(
        "one process, the whole classify training step (IMDB reviews, d=256, 2 layers, max "
        "length 256, batch 32) of the standard encoder and p = 2, 4, 8, interleaved over "
        "repeats; parameter counts from the modules"
    ),
    paper_scale=(
        "Width 768 on a GPU, where attention and matrix products parallelize differently than "
        "on a CPU."
    ),
    differences=("hardware: the machine named under 'As run', float32",),
    measure="spectral_scaling",
    seeds=8,  # 2 rounds of the 4 orders of a Williams design for 4 arms
    comparisons=tuple(
        Comparison(
            f"p={p} vs standard, time per step (petra's own)",
            "step_ms",
            f"p{p}",
            "standard",
            "lower",
            relative=True,
        )
        for p in (2, 4, 8)
    ),
    notes=(
        "The paper's claim here is the parameter count (the checks: encoder parameters 1/p up "
        "to norms). It publishes no step time and claims no speed-up: the time-per-step "
        "comparisons (each p faster than the standard encoder: a superiority test) are "
        "petra's own, with no paper figure.",
    ),
)

CLAIMS: dict[str, Claim] = {
    claim.id: claim
    for claim in (
        PETE_TABLE1, PETE_TABLE2, PETE_SPEED, KRONECKER_LM, KRONECKER_SPELLING, KRONECKER_NORMS,
        KRONECKER_GEOMETRY, KRONECKER_RUNTIME, LT_IMDB, LT_AGNEWS, LT_SCALING,
    )
}  # fmt: skip


def get_claim(claim_id: str) -> Claim:
    """The claim registered as `claim_id` (`petra reproduce --list` names them all).

    Raises:
        ValueError: for an unknown id.
    """
    if claim_id not in CLAIMS:
        raise ValueError(f"unknown claim {claim_id!r}; see petra reproduce --list: {list(CLAIMS)}")
    return CLAIMS[claim_id]


def claim_arms(claim: Claim) -> tuple[Arm, ...]:
    """The arms whose runs a claim reads: its own, or those of the claim it analyses."""
    return get_claim(claim.runs_of).arms if claim.runs_of else claim.arms
