"""The training loop: one `Task` (data, loss, evaluation), one model, one `TrainConfig`.

A run directory holds `config.json` (what was run), `metrics.jsonl` (a line per logged step:
training loss, learning rate, tokens/s; and a line per evaluation), `results.json` (final
metrics, parameters, wall time, steps, steps/s, and the machine, software, device and
dtype of the process that finished it: `petra.provenance.environment`), `checkpoints/`
(resumable) and `model/` (the final model, as its `ModelFiles` writes it: for a petra model,
what `load_pretrained` reads).

The model is any `nn.Module`: how it is written, read back and counted is one small hook,
`ModelFiles` (petra's models by default; `petra.hf.HFModelFiles` for a Hugging Face model
with a petra embedding, which `petra compress` trains). A task may give its own optimizer
parameter groups (`parameter_groups`, e.g. a learning rate per group).

A fresh run is evaluated once before its first step (`eval_at_start`), so that drift from
the initialization shows; every evaluation also logs the embedding's norms
(`eval/embedding/...`, see `TokenEmbedding.weight_norms`). Evaluation runs in eval mode
under no_grad and restores the RNG state, so it never changes the training trajectory.

Resuming restores the model, optimizer, schedule, data position (epoch and batch) and RNG
state of the latest checkpoint, so that an interrupted run ends where the uninterrupted one
would; a damaged latest checkpoint is set aside (`step-N.damaged`, with a warning) and the
one before it resumed. Progress shows as a tqdm bar on a terminal, and as one plain line per
logged step when stderr is a file.

Under torchrun every process sees the same global batches, split among them
(`ShardedBatches`), gradients are averaged by DistributedDataParallel, and only rank 0
writes.
"""

from __future__ import annotations

import itertools
import json
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm.auto import tqdm

from petra.atomic import atomic_folder, atomic_write_json, atomic_write_text, read_json
from petra.checks import file_in_the_way
from petra.data.batching import ShardedBatches
from petra.models.checkpoint import load_state
from petra.provenance import environment
from petra.training import distributed
from petra.training.checkpoint import (
    DamagedCheckpoint,
    ModelFiles,
    PetraModelFiles,
    checkpoint_dirs,
    read_training_checkpoint,
    rng_state,
    save_training_checkpoint,
    set_aside,
    set_rng_state,
)
from petra.training.config import TrainConfig
from petra.training.optim import build_optimizer, build_schedule, optimizer_step


class Task(Protocol):
    """What the trainer needs from a task."""

    name: str
    train_dataset: Dataset

    def batch_sampler(self, batch_size: int, seed: int) -> Sampler[list[int]]:
        """Global batches of train_dataset indices, reshuffled by `set_epoch`."""

    def collate(self, items: list) -> dict[str, Tensor]: ...

    def loss(self, model: nn.Module, batch: dict[str, Tensor]) -> tuple[Tensor, int]:
        """Mean loss of the batch and the number of tokens it holds."""

    def evaluate(self, model: nn.Module) -> dict[str, float]: ...

    # optional: summarize(history: list[(step, metrics)]) -> dict, merged into the results;
    # parameter_groups(model, config) -> AdamW's groups (default: `parameter_groups`, decay
    # on weight matrices only); begin_step(model, step) -> None, called before each step's
    # loss with the step's number (0 for the first), e.g. to freeze parts of the model for
    # the first steps


class TrainingDiverged(FloatingPointError):
    """The loss or the gradient stopped being finite."""


class _SkipFirst(Sampler[list[int]]):
    """The batches of `sampler` after the first `skip` (to resume mid-epoch)."""

    def __init__(self, sampler, skip: int):
        self.sampler, self.skip = sampler, skip

    def __iter__(self) -> Iterator[list[int]]:
        return itertools.islice(iter(self.sampler), self.skip, None)

    def __len__(self) -> int:
        return max(0, len(self.sampler) - self.skip)


def read_metrics(run_dir: str | Path, drop_damaged: bool = False) -> list[dict]:
    """The records of a run's `metrics.jsonl`, one dict per logged step (`{"step": 10,
    "train/loss": ..., ...}`), in the order logged; [] when there is no such file.

    A line that is not such a record (one torn by a kill while it was written) raises a
    `ValueError` naming the file and the line, or with `drop_damaged` is left out with a
    warning (as a resumed run does before it logs those steps again)."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return []
    records = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            record = None
        step = record.get("step") if isinstance(record, dict) else None
        if isinstance(step, int) and not isinstance(step, bool):
            records.append(record)
        elif drop_damaged:
            warnings.warn(f"{path}: dropped a damaged line ({line[:40]!r}...)", stacklevel=2)
        else:
            raise ValueError(f"{path}, line {number}, is not a logged step ({line[:40]!r}...)")
    return records


def _metrics_line(record: dict) -> str:
    """One record's line of `metrics.jsonl` (`read_metrics` reads it back as it was)."""
    return json.dumps(record) + "\n"


class Trainer:
    """Trains one model on one task in a run directory (its layout is set out in
    `petra.training.trainer`), resumably; `fit()` runs the loop.

    Args:
        model: the model to train.
        task: the data, loss and evaluation (a `Task`).
        config: steps, batch size, optimizer, schedule and bookkeeping.
        run_dir: the run directory: new, or holding the run to resume.
        run_config: what was run, written to `config.json`.
        settings: the run's settings with every default filled in, as the petra that trains
            it reads them (`petra.tasks.run.effective_settings`, with V and the labels as the
            model has them), written to `results.json`
            so that a report made by a later petra shows what ran, not its own defaults.
        resume: continue the run in `run_dir` from its latest checkpoint.
        progress: show progress (a tqdm bar on a terminal, plain lines otherwise).
        files: how the model is written, read back and counted (`ModelFiles`); a petra
            model's own by default.

    Raises:
        ValueError: if `run_dir` is a file or already holds a run and `resume` is False, the
            training data do not fill one batch, or the model has sparse gradients.
    """

    def __init__(
        self,
        model: nn.Module,
        task: Task,
        config: TrainConfig,
        run_dir: str | Path,
        *,
        run_config: dict | None = None,
        settings: dict | None = None,
        resume: bool = False,
        progress: bool = True,
        files: ModelFiles | None = None,
    ):
        _refuse_sparse_gradients(model)
        self.files = files or PetraModelFiles()
        self.run_dir = Path(run_dir)
        blocking = file_in_the_way(self.run_dir)
        if blocking is not None:
            raise ValueError(f"{self.run_dir} cannot be a run directory: {blocking} is a file; "
                             "choose another --out")  # fmt: skip
        self.device = distributed.setup(config.device)
        self.model, self.task, self.config = model.to(self.device), task, config
        self.run_config, self.settings = run_config or {}, settings
        self.progress = progress
        self.main = distributed.is_main()
        torch.manual_seed(config.seed)
        own_groups = getattr(task, "parameter_groups", None)
        groups = own_groups(self.model, config) if own_groups is not None else None
        self.optimizer = build_optimizer(self.model, config, groups)
        self.schedule = build_schedule(self.optimizer, config)
        self.sampler = ShardedBatches(task.batch_sampler(config.batch_size, config.seed))
        if len(self.sampler) == 0:
            raise ValueError(
                f"{len(task.train_dataset)} training examples do not fill one batch of "
                f"{config.batch_size}: lower train.batch_size or use more data"
            )
        self.state = {"step": 0, "epoch": 0, "batch_in_epoch": 0, "wall_time_s": 0.0, "tokens": 0}
        self.history: list[tuple[int, dict[str, float]]] = []  # (step, evaluation metrics)
        existing = checkpoint_dirs(self.run_dir)
        ended = (self.run_dir / "results.json").is_file()
        if (existing or ended) and not resume:
            held = f"checkpoint {existing[-1].name}" if existing else "results.json"
            raise ValueError(
                f"{self.run_dir} already holds a run ({held}): pass --resume to continue it, "
                "or choose another --out"
            )
        self.finished = resume and ended
        restored = bool(existing) and resume and not self.finished
        if restored:
            self._resume(existing)
        if self.main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_json(self.run_dir / "config.json", self.run_config)
            if not self.finished:
                self._truncate_metrics(self.state["step"] if restored else -1)

    # -- the loop ------------------------------------------------------------------------
    def fit(self, stop_after: int | None = None) -> dict:
        """Train to `config.steps` (or stop once `stop_after` steps are done, as if
        interrupted); return the results (also written to results.json at the end)."""
        if self.finished:  # resuming a run that already ended: nothing to do
            return read_json(self.run_dir / "results.json", "the run's results")
        config, state = self.config, self.state
        network = self.model
        if distributed.world_size() > 1:
            network = DistributedDataParallel(self.model)
        show = self.main and self.progress
        on_terminal = sys.stderr.isatty()
        bar = tqdm(
            total=config.steps,
            initial=state["step"],
            disable=not (show and on_terminal),
            desc=self.task.name,
        )
        if config.eval_at_start and state["step"] == 0 and not self.history:
            self._evaluate()
        fit_start, fit_first_step = time.perf_counter(), state["step"]
        window_start, window_tokens = time.perf_counter(), 0
        while state["step"] < config.steps and (stop_after is None or state["step"] < stop_after):
            self.sampler.set_epoch(state["epoch"])
            loader = DataLoader(
                self.task.train_dataset,
                batch_sampler=_SkipFirst(self.sampler, state["batch_in_epoch"]),
                collate_fn=self.task.collate,
                generator=torch.Generator(),  # else each new iterator draws from the global RNG
            )
            for batch in loader:
                started = time.perf_counter()
                if hasattr(self.task, "begin_step"):
                    self.task.begin_step(self.model, state["step"])
                loss, tokens, lr = self._step(network, batch)
                state["step"] += 1
                state["batch_in_epoch"] += 1
                state["tokens"] += tokens
                state["wall_time_s"] += time.perf_counter() - started
                window_tokens += tokens
                step = state["step"]
                if step % config.log_every == 0 or step == config.steps:
                    elapsed = time.perf_counter() - window_start
                    record = {
                        "step": step,
                        "epoch": state["epoch"],
                        "train/loss": loss,
                        "lr": lr,
                        "tokens_per_s": window_tokens / max(elapsed, 1e-9),
                    }
                    self._log(record)
                    bar.set_postfix(loss=f"{loss:.4f}", tok_s=f"{record['tokens_per_s']:.0f}")
                    if show and not on_terminal:
                        self._print_progress(record, fit_start, step - fit_first_step)
                    window_start, window_tokens = time.perf_counter(), 0
                bar.update(1)
                if step % config.eval_every == 0 and step < config.steps:
                    self._evaluate()
                if step % config.checkpoint_every == 0 and step < config.steps:
                    self._checkpoint()
                if step >= config.steps or (stop_after is not None and step >= stop_after):
                    break
            else:
                state["epoch"] += 1
                state["batch_in_epoch"] = 0
        bar.close()
        if state["step"] < config.steps:  # stopped early: leave a checkpoint to resume from
            self._checkpoint()
            return {"stopped_at": state["step"]}
        return self._finish(self._evaluate())

    def _step(self, network: nn.Module, batch: dict[str, Tensor]) -> tuple[float, int, float]:
        """One optimization step: (mean loss over processes, tokens, learning rate used)."""
        network.train()
        batch = {k: v.to(self.device) for k, v in batch.items()}
        loss, tokens = self.task.loss(network, batch)
        mean_loss = distributed.mean_over_processes(loss.detach())
        if not torch.isfinite(mean_loss):
            self._diverged(f"the loss is {mean_loss.item()}")
        clip = self.config.grad_clip
        lr = optimizer_step(self.model, loss, self.optimizer, self.schedule, clip,
                            check_norm=self._check_grad_norm)  # fmt: skip
        return mean_loss.item(), tokens * distributed.world_size(), lr

    def _check_grad_norm(self, norm: Tensor) -> None:
        if not torch.isfinite(norm):
            self._diverged(f"the gradient norm is {norm.item()}")

    def _print_progress(self, record: dict, fit_start: float, steps_done: int) -> None:
        """One plain line on stderr (for log files and CI, where the bar does not show)."""
        elapsed = time.perf_counter() - fit_start
        remaining = elapsed / max(steps_done, 1) * (self.config.steps - record["step"])
        print(
            f"{self.task.name} step {record['step']}/{self.config.steps}"
            f"  loss {record['train/loss']:.4f}  lr {record['lr']:.2e}"
            f"  tokens/s {record['tokens_per_s']:.0f}"
            f"  elapsed {tqdm.format_interval(elapsed)}  eta {tqdm.format_interval(remaining)}",
            file=sys.stderr,
            flush=True,
        )

    def _diverged(self, what: str) -> None:
        last = checkpoint_dirs(self.run_dir)
        where = f"the last good checkpoint is {last[-1]}" if last else "no checkpoint was written"
        raise TrainingDiverged(
            f"{what} at step {self.state['step'] + 1}: training stopped and nothing was saved; "
            f"{where}. Lower the learning rate or raise the warmup, and run again in a new --out "
            "(a resumed run must keep its settings)."
        )

    # -- evaluation, logging, checkpoints ----------------------------------------------------
    def _evaluate(self) -> dict[str, float]:
        metrics = {}
        if self.main:
            self.model.eval()
            cuda = [self.device] if self.device.type == "cuda" else []
            with torch.no_grad(), torch.random.fork_rng(devices=cuda):
                metrics = {**self.task.evaluate(self.model), **embedding_norms(self.model)}
            self._log({"step": self.state["step"], **{f"eval/{k}": v for k, v in metrics.items()}})
            self.history.append((self.state["step"], metrics))
        distributed.barrier()
        return metrics

    def _log(self, record: dict) -> None:
        if self.main:
            with open(self.run_dir / "metrics.jsonl", "a") as f:
                f.write(_metrics_line(record))

    def _truncate_metrics(self, last_step: int) -> None:
        """Drop lines logged after `last_step`, the step resumed from (they will be logged
        again); all of them (-1) when nothing was resumed."""
        path = self.run_dir / "metrics.jsonl"
        if not path.is_file():
            return
        records = read_metrics(self.run_dir, drop_damaged=True)
        kept = "".join(_metrics_line(r) for r in records if r["step"] <= last_step)
        atomic_write_text(path, kept)  # whole: a kill while it is written loses no line

    def _checkpoint(self) -> None:
        if self.main:
            trainer_state = {
                **self.state,
                "optimizer": self.optimizer.state_dict(),
                "schedule": self.schedule.state_dict(),
                "rng": rng_state(),
                "history": self.history,
            }
            keep = self.config.keep_checkpoints
            tokenizer = getattr(self.task, "tokenizer", None)
            save_training_checkpoint(
                self.run_dir, self.model, self.files, trainer_state, keep, tokenizer
            )
        distributed.barrier()

    def _resume(self, checkpoints: list[Path]) -> None:
        """Restore the latest checkpoint that reads; set aside the damaged ones after it."""
        damaged = []
        for path in reversed(checkpoints):
            try:
                model_state, saved = read_training_checkpoint(path, self.files)
            except DamagedCheckpoint as error:
                damaged.append((path, error))
                continue
            load_state(self.model, model_state, str(path))
            self._restore(saved)
            resumed_from = path
            break
        else:
            raise ValueError(
                f"no checkpoint of {self.run_dir} can be read: "
                + "; ".join(str(error) for _, error in damaged)
                + ". Start a new run with another --out (or delete the checkpoints)."
            )
        distributed.barrier()  # every process has read before the damaged ones are renamed
        for path, error in damaged if self.main else []:
            warnings.warn(
                f"{error}: resumed from {resumed_from.name} instead; the damaged checkpoint "
                f"is kept as {set_aside(path)}",
                stacklevel=3,
            )
        distributed.barrier()

    def _restore(self, saved: dict) -> None:
        self.optimizer.load_state_dict(saved["optimizer"])
        self.schedule.load_state_dict(saved["schedule"])
        set_rng_state(saved["rng"])
        self.state = {key: saved[key] for key in self.state}
        self.history = [(step, metrics) for step, metrics in saved["history"]]

    def _finish(self, metrics: dict[str, float]) -> dict:
        state = self.state
        results = {
            "task": self.task.name,
            "metrics": metrics,
            "params": self.files.report(self.model),
            "steps": state["step"],
            "wall_time_s": state["wall_time_s"],
            "steps_per_s": state["step"] / max(state["wall_time_s"], 1e-9),
            "tokens_per_s": state["tokens"] / max(state["wall_time_s"], 1e-9),
            "world_size": distributed.world_size(),
            "environment": environment(
                self.device, next(self.model.parameters()).dtype, distributed.world_size()
            ),
        }
        if self.settings is not None:
            results["settings"] = self.settings
        summarize = getattr(self.task, "summarize", None)
        if summarize is not None:
            results["metrics"] |= summarize(self.history)
        if self.main:
            with atomic_folder(self.run_dir / "model") as folder:
                self.files.write(self.model, folder, getattr(self.task, "tokenizer", None))
            atomic_write_json(self.run_dir / "results.json", results)
        distributed.barrier()
        return results


def embedding_norms(model: nn.Module) -> dict[str, float]:
    """`embedding/<name>` for each norm of the model's embedding (`weight_norms()`: the mean
    output-row norm of its trained matrix, the Kronecker paper's "projection norm", among
    them), logged at every evaluation of every task; {} for a model without one."""
    weight_norms = getattr(getattr(model, "embedding", None), "weight_norms", None)
    if weight_norms is None:
        return {}
    return {f"embedding/{name}": value for name, value in weight_norms().items()}


def _refuse_sparse_gradients(model: nn.Module) -> None:
    for name, module in model.named_modules():
        if isinstance(module, (nn.Embedding, nn.EmbeddingBag)) and module.sparse:
            raise ValueError(
                f"{name or 'the model'} has sparse gradients (sparse=True), which need a sparse "
                "optimizer such as torch.optim.SparseAdam; the trainer uses AdamW with gradient "
                "clipping, which cannot take them: drop the option (model.embedding.sparse)"
            )
