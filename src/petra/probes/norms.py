"""Norm drift over a run: the norms of the embedding's trained matrix (the learned table,
the Kronecker projection, the Fourier refinement) and the mean row norm of its table, at
every evaluation logged in `metrics.jsonl` (from step 0, before the first update) and at
every checkpoint still on disk.

The Kronecker paper reports that learned tables drift while its projection's norm "stays
near 1.0": that norm is `matrix_row_norm_mean`, the mean L2 norm of the projection's d output
rows (1.0 at its N(0, 1/sqrt(D)) initialization); for a learned table the same quantity is
the mean norm of its V rows. Frobenius (about sqrt(d) times it) and spectral norms are
reported beside it, as other quantities."""

from __future__ import annotations

from pathlib import Path

import torch

from petra.models import load_pretrained
from petra.plotting import pyplot, save
from petra.training.checkpoint import checkpoint_dirs
from petra.training.trainer import read_metrics


@torch.no_grad()
def token_vector_norm(embedding, ids: torch.Tensor) -> float:
    """(1/|U|) sum_{v in U} ||E(v)||_2 over the distinct ids U of `ids`: the mean norm of the
    token vectors a model reads (each id once, not weighted by frequency). For a learned
    table it moves only with the rows of U; for a computed kind, with its shared matrix."""
    unique = torch.unique(ids.flatten())
    return embedding(unique).float().norm(dim=-1).mean().item()


def norm_series(run_dir: str | Path) -> dict:
    """The embedding's norms over a run: those logged at each evaluation and those of every
    checkpoint still on disk (and of the final model).

    Args:
        run_dir: a run directory written by `petra train`.

    Returns:
        `{"run", "kind", "logged": {norm: [(step, value), ...]}, "checkpoints": [{"step",
        **TokenEmbedding.weight_norms()}, ...]}`.

    Raises:
        FileNotFoundError: if `run_dir` has no `config.json`.
        ValueError: if it has neither logged norms nor checkpoints.
    """
    run_dir = Path(run_dir)
    if not (run_dir / "config.json").is_file():
        raise FileNotFoundError(f"{run_dir} is not a run directory (no config.json)")
    logged: dict[str, list[tuple[int, float]]] = {}
    for record in read_metrics(run_dir):
        for key, value in record.items():
            if key.startswith("eval/embedding/"):
                logged.setdefault(key.removeprefix("eval/embedding/"), []).append(
                    (record["step"], value)
                )
    checkpoints = []
    for path in checkpoint_dirs(run_dir):
        model = load_pretrained(path)
        checkpoints.append(
            {"step": int(path.name.removeprefix("step-")), **model.embedding.weight_norms()}
        )
    if (run_dir / "model").is_dir():
        final = load_pretrained(run_dir / "model")
        kind = final.embedding.kind
        checkpoints.append({"step": "final", **final.embedding.weight_norms()})
    else:
        kind = None
    if not logged and not checkpoints:
        raise ValueError(f"{run_dir} has neither logged embedding norms nor checkpoints")
    return {"run": str(run_dir), "kind": kind, "logged": logged, "checkpoints": checkpoints}


def plot_norms(series: dict, path: str | Path) -> None:
    """Plot a `norm_series` against the training step into the image file `path`."""
    plt = pyplot()
    figure, axes = plt.subplots(figsize=(6.5, 4))
    for name, points in series["logged"].items():
        axes.plot(*zip(*points, strict=True), marker="o", label=name)
    numbered = [c for c in series["checkpoints"] if c["step"] != "final"]
    for name in ("matrix_row_norm_mean", "matrix_spectral", "matrix_fro", "row_norm_mean"):
        if numbered and name not in series["logged"] and name in numbered[0]:
            axes.plot(
                [c["step"] for c in numbered],
                [c[name] for c in numbered],
                marker="s",
                label=f"{name} (checkpoints)",
            )
    axes.set(xlabel="step", ylabel="norm", title=f"embedding norms ({series['kind']})")
    axes.set_yscale("log")
    save(figure, axes, path)
