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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except (ValueError, TypeError, FileNotFoundError) as error:
        print(f"petra {args.command}: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
