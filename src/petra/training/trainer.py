"""The training loop: one `Task` (data, loss, evaluation), one model, one `TrainConfig`.

A run directory holds `config.json` (what was run), `metrics.jsonl` (a line per logged step:
training loss, learning rate, tokens/s; and a line per evaluation), `results.json` (final
metrics, parameters, wall time, steps, steps/s), `checkpoints/` (resumable) and `model/`
(the final weights, for `load_pretrained`).

Resuming restores the model, optimizer, schedule, data position (epoch and batch) and RNG
state of the latest checkpoint, so that an interrupted run ends where the uninterrupted one
would. Under torchrun every process sees the same global batches, split among them
(`ShardedBatches`), gradients are averaged by DistributedDataParallel, and only rank 0
writes.
"""

from __future__ import annotations

import itertools
import json
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

from petra.data.batching import ShardedBatches
from petra.training import distributed
from petra.training.checkpoint import (
    checkpoint_dirs,
    load_training_checkpoint,
    rng_state,
    save_training_checkpoint,
    set_rng_state,
)
from petra.training.config import TrainConfig
from petra.training.optim import build_optimizer, build_schedule


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

    # optional: summarize(history: list[(step, metrics)]) -> dict, merged into the results


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


class Trainer:
    def __init__(
        self,
        model: nn.Module,
        task: Task,
        config: TrainConfig,
        run_dir: str | Path,
        *,
        run_config: dict | None = None,
        resume: bool = False,
        progress: bool = True,
    ):
        self.device = distributed.setup(config.device)
        self.model, self.task, self.config = model.to(self.device), task, config
        self.run_dir = Path(run_dir)
        self.run_config = run_config or {}
        self.progress = progress
        self.main = distributed.is_main()
        torch.manual_seed(config.seed)
        self.optimizer = build_optimizer(self.model, config)
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
        if existing and not resume:
            raise ValueError(
                f"{self.run_dir} already holds a run (checkpoint {existing[-1].name}): pass "
                "--resume to continue it, or choose another --out"
            )
        if resume and existing:
            self._restore(existing[-1])
        self.finished = resume and (self.run_dir / "results.json").is_file()
        if self.main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            (self.run_dir / "config.json").write_text(json.dumps(self.run_config, indent=2) + "\n")
            self._truncate_metrics()

    # -- the loop ------------------------------------------------------------------------
    def fit(self, stop_after: int | None = None) -> dict:
        """Train to `config.steps` (or stop once `stop_after` steps are done, as if
        interrupted); return the results (also written to results.json at the end)."""
        if self.finished:  # resuming a run that already ended: nothing to do
            return json.loads((self.run_dir / "results.json").read_text())
        config, state = self.config, self.state
        network = self.model
        if distributed.world_size() > 1:
            network = DistributedDataParallel(self.model)
        bar = tqdm(
            total=config.steps,
            initial=state["step"],
            disable=True if not (self.main and self.progress) else None,  # None: off when not a TTY
            desc=self.task.name,
        )
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
        loss.backward()
        if self.config.grad_clip > 0:
            norm = nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
            if not torch.isfinite(norm):
                self._diverged(f"the gradient norm is {norm.item()}")
        lr = self.schedule.get_last_lr()[0]
        self.optimizer.step()
        self.schedule.step()
        self.optimizer.zero_grad(set_to_none=True)
        return mean_loss.item(), tokens * distributed.world_size(), lr

    def _diverged(self, what: str) -> None:
        last = checkpoint_dirs(self.run_dir)
        where = f"the last good checkpoint is {last[-1]}" if last else "no checkpoint was written"
        raise TrainingDiverged(
            f"{what} at step {self.state['step'] + 1}: training stopped and nothing was saved; "
            f"{where}. Lower the learning rate or raise the warmup, then --resume."
        )

    # -- evaluation, logging, checkpoints ----------------------------------------------------
    def _evaluate(self) -> dict[str, float]:
        metrics = {}
        if self.main:
            self.model.eval()
            with torch.no_grad():
                metrics = self.task.evaluate(self.model)
            self._log({"step": self.state["step"], **{f"eval/{k}": v for k, v in metrics.items()}})
            self.history.append((self.state["step"], metrics))
        distributed.barrier()
        return metrics

    def _log(self, record: dict) -> None:
        if self.main:
            with open(self.run_dir / "metrics.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")

    def _truncate_metrics(self) -> None:
        """On resume, drop lines logged after the checkpoint (they will be logged again)."""
        path = self.run_dir / "metrics.jsonl"
        if not path.is_file():
            return
        kept = []
        for line in path.read_text().splitlines():
            try:
                if json.loads(line)["step"] <= self.state["step"]:
                    kept.append(line)
            except (json.JSONDecodeError, KeyError, TypeError):
                warnings.warn(f"{path}: dropped a damaged line ({line[:40]!r}...)", stacklevel=2)
        path.write_text("".join(line + "\n" for line in kept))

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
            save_training_checkpoint(self.run_dir, self.model, trainer_state, keep, tokenizer)
        distributed.barrier()

    def _restore(self, path: Path) -> None:
        saved = load_training_checkpoint(path, self.model, self.device)
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
            "params": self.model.param_report(),
            "steps": state["step"],
            "wall_time_s": state["wall_time_s"],
            "steps_per_s": state["step"] / max(state["wall_time_s"], 1e-9),
            "tokens_per_s": state["tokens"] / max(state["wall_time_s"], 1e-9),
            "world_size": distributed.world_size(),
        }
        summarize = getattr(self.task, "summarize", None)
        if summarize is not None:
            results["metrics"] |= summarize(self.history)
        if self.main:
            self.model.save_pretrained(
                self.run_dir / "model", getattr(self.task, "tokenizer", None)
            )
            (self.run_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
        distributed.barrier()
        return results
