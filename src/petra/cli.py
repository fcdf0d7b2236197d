"""The `petra` command."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _int_list(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None


def _params(args: argparse.Namespace) -> None:
    from petra.params import format_table, param_rows

    rows = param_rows(args.tokenizers.split(","), args.dims, args.data_dir)
    print(format_table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
        print(f"\nwrote {args.json}")


def _train(args: argparse.Namespace) -> None:
    from petra.tasks import run_task

    results = run_task(
        args.task, args.preset, args.set, args.out, resume=args.resume, progress=not args.quiet
    )
    print(json.dumps({k: results[k] for k in results if k != "params"}, indent=2))


def _eval(args: argparse.Namespace) -> None:
    from petra.models import load_pretrained
    from petra.tasks.run import TASKS, apply_overrides, load_preset

    spec = apply_overrides(args.task, load_preset(args.task, args.preset), args.set)
    task_cls, data_cls = TASKS[args.task]
    task = task_cls(data_cls(**spec["data"]), seed=spec["train"].get("seed", 0))
    model = load_pretrained(args.checkpoint, tokenizer=task.tokenizer).eval()
    import torch

    with torch.no_grad():
        print(json.dumps(task.evaluate(model)))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="petra", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    params = commands.add_parser(
        "params",
        help="parameter and memory report of every embedding kind",
        description="Trainable parameters, buffer bytes and the saving against a learned "
        "V x d table, for every embedding kind, built at each tokenizer's V and each width.",
    )
    params.add_argument(
        "--tokenizers",
        default="bert-base-uncased,gpt2",
        help="comma-separated tokenizer names or paths (default: %(default)s)",
    )
    params.add_argument(
        "--dims", type=_int_list, default=[256, 512, 768], help="widths (default: 256,512,768)"
    )
    params.add_argument("--data-dir", default=None, help="data folder (default: $PETRA_DATA)")
    params.add_argument("--json", default=None, metavar="FILE", help="also write rows as JSON")
    params.set_defaults(run=_params)

    train = commands.add_parser(
        "train",
        help="train a task (classify, lm) with a preset",
        description="Train TASK with the settings of a preset (petra/configs/NAME.json); "
        "--set section.key=value changes one (sections: model, train, data; e.g. "
        "--set model.embedding=fourier --set train.steps=500).",
    )
    train.add_argument("task", help="classify or lm")
    _run_arguments(train)
    train.add_argument("--out", default=None, help="run directory (default: runs/TASK-PRESET)")
    train.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.set_defaults(run=_train)

    evaluate = commands.add_parser(
        "eval",
        help="evaluate a saved model on a task's held-out data",
        description="Evaluate the model saved in DIR (a run's model/ or a checkpoint) on the "
        "held-out data of TASK as a preset defines it; prints one JSON object.",
    )
    evaluate.add_argument("task", help="classify or lm")
    evaluate.add_argument("--checkpoint", required=True, metavar="DIR")
    _run_arguments(evaluate)
    evaluate.set_defaults(run=_eval)
    return parser


def _run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", default="default", help="preset name (default: default)")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a setting"
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except (ValueError, TypeError, FileNotFoundError, FloatingPointError) as error:
        print(f"petra {args.command}: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
