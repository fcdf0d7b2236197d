"""The `petra` command."""

from __future__ import annotations

import argparse
import errno
import importlib
import json
import os
import sys
from pathlib import Path

from petra import __version__
from petra.data.paths import use_data_dir
from petra.embeddings.budget import TOLERANCE

TASK_HELP = "nli-sts, sts, distill, classify or lm"


def _int_list(text: str) -> list[int]:
    """`0,1,2` -> [0, 1, 2]; anything else is refused (argparse prints the message)."""
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers such as 0,1,2, got {text!r}"
        ) from None


def _params(args: argparse.Namespace) -> None:
    from petra.params import format_table, param_rows

    _check_out_file(args.json, "--json", "params.json")
    rows = param_rows(args.tokenizers.split(","), args.dims)
    print(format_table(rows) + "\n")
    _write_json(rows, args.json)


def _train(args: argparse.Namespace) -> None:
    from petra.tasks import run_task
    from petra.training import distributed

    try:
        changes = [("train.init", args.init)] if args.init else []
        results = run_task(
            args.task,
            args.preset,
            args.set,
            args.out,
            changes=changes,
            resume=args.resume,
            progress=not args.quiet,
        )
        main_process = distributed.is_main()
    finally:
        distributed.teardown()
    if main_process:
        print(json.dumps({k: results[k] for k in results if k != "params"}, indent=2))


def _eval(args: argparse.Namespace) -> None:
    from petra.tasks.run import evaluate_checkpoint

    changes = [("data.sts_eval", args.file)] if args.file else []
    print(json.dumps(evaluate_checkpoint(args.task, args.checkpoint, args.preset, args.set,
                                         changes=changes)))  # fmt: skip


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _compare(args: argparse.Namespace) -> None:
    from petra.compare import Budget, compare, format_table
    from petra.embeddings import parse_budget

    budget = None
    if args.budget is None and args.budget_ratio is None and args.budget_tolerance is not None:
        raise ValueError("--budget-tolerance applies to a budget: give --budget or --budget-ratio")
    if args.budget is not None or args.budget_ratio is not None:
        params = None if args.budget is None else parse_budget(args.budget)
        given = {} if args.budget_tolerance is None else {"tolerance": args.budget_tolerance}
        budget = Budget(params, args.budget_ratio, **given)
    summary = compare(
        args.task,
        _names(args.kinds),
        _names(args.backbones),
        args.preset,
        args.seeds,
        args.out or f"runs/compare-{args.task}-{args.preset}",
        args.set,
        progress=not args.quiet,
        grid=args.grid,
        budget=budget,
    )
    print(format_table(summary))


def _reproduce(args: argparse.Namespace) -> None:
    from petra.reproduce import CLAIMS, list_claims, reproduce

    if args.list:
        print(list_claims())
    elif args.update_texts:
        from petra.reproduce.report import update_texts

        for line in update_texts(args.update_texts):
            print(line)
    elif args.report:
        from petra.reproduce.report import write_report

        claims = [
            folder for folder in args.report if folder in CLAIMS and not Path(folder).is_dir()
        ]
        if claims:
            raise ValueError(
                f"--report takes results folders, and {claims[0]} is a claim: run the claims "
                "first (petra reproduce CLAIM...), then write the report"
            )
        results, *scales = args.report
        print(f"wrote {write_report(results, args.to, scales=scales)}")
    else:
        if args.all and args.claims:
            raise ValueError("give claim ids or --all, not both")
        claims = list(CLAIMS) if args.all else args.claims
        reproduce(claims, args.out, args.seeds, args.quick, args.preset, args.set, not args.quiet)


def _compress(args: argparse.Namespace) -> None:
    from petra.compress import (
        CompressSettings,
        comparison_table,
        compress,
        format_result,
        parse_options,
        plot_tradeoff,
    )

    if args.table:
        print(comparison_table(args.table))
        if args.plot:
            print(f"wrote {plot_tradeoff(args.table, args.plot)}")
        return
    if args.plot:
        raise ValueError("--plot draws the runs of --table: give them with --table")
    missing = [f"--{name}" for name in ("model", "kind", "out") if getattr(args, name) is None]
    if missing:
        raise ValueError(f"a compress run needs {', '.join(missing)}")
    settings = CompressSettings(
        model=args.model, kind=args.kind, factor_dim=args.factor_dim, head=args.head,
        start=args.start,
        steps=args.steps, batch_size=args.batch_size, lr=args.lr,
        embedding_lr=args.embedding_lr, seed=args.seed, max_length=args.max_length,
        distil=args.distil, embedding_steps=args.embedding_steps, eval_every=args.eval_every,
        eval_split=args.eval_split, eval_pairs=args.eval_pairs,
        options=parse_options(args.kind, args.option),
    )  # fmt: skip
    print(format_result(compress(settings, args.out, progress=not args.quiet)))


def _probe_model(args: argparse.Namespace):
    """The checkpoint's model and tokenizer (tokenizer.json beside it, or --tokenizer)."""
    from petra.data import load_tokenizer
    from petra.models import load_pretrained

    source = args.tokenizer or args.checkpoint
    tokenizer = load_tokenizer(source)
    return load_pretrained(args.checkpoint, tokenizer=tokenizer).eval(), tokenizer


def _write_json(payload: dict | list, path: str | None) -> None:
    from petra.atomic import atomic_write_json

    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, payload)
        print(f"wrote {path}")


def _check_out_file(
    path: str | Path | None, flag: str = "--out", example: str = "result.json"
) -> None:
    """Refuse, before any work is done, a `flag` path that cannot become a file: a folder,
    or a path under a file."""
    from petra.checks import file_in_the_way

    if not path:
        return
    out = Path(path)
    if out.is_dir():
        raise ValueError(
            f"{flag} {path} is a folder: give the path of a file to write, such as {out / example}"
        )
    blocking = file_in_the_way(out, itself=False)
    if blocking is not None:
        raise ValueError(f"{flag} {path}: {blocking} is a file, not a folder")


def _probe_norms(args: argparse.Namespace) -> None:
    from petra.probes import norm_series, plot_norms

    out = Path(args.out or Path(args.run) / "norms.json")
    _check_out_file(out)
    _check_out_file(out.with_suffix(".png"))
    series = norm_series(args.run)
    _write_json(series, str(out))
    plot_norms(series, out.with_suffix(".png"))
    print(f"wrote {out.with_suffix('.png')}")


def _probe_geometry(args: argparse.Namespace) -> None:
    """The Kronecker paper's retrieval probe of a pretrained model's input table (--model),
    or petra's geometry probe and the retrieval probe of a checkpoint's or a fresh table."""
    import torch

    from petra import build_embedding
    from petra.data import load_tokenizer
    from petra.embeddings import embedding_class
    from petra.probes import format_retrieval, probe_geometry, retrieval_probe

    _check_out_file(args.out)
    if args.model and args.checkpoint:
        raise ValueError("give --model (a pretrained model) or --checkpoint (petra's), not both")
    if args.model:
        from petra.compress import input_table

        table, tokenizer = input_table(args.model)
        result = {"model": args.model, "retrieval": retrieval_probe(table, tokenizer, k=args.k)}
    else:
        if args.checkpoint:
            model, tokenizer = _probe_model(args)
            embedding = model.embedding
        else:  # a freshly initialized embedding of --kind, drawn the same on every call
            tokenizer = load_tokenizer(args.tokenizer or "gpt2")
            options = embedding_class(args.kind).token_inputs(tokenizer)
            torch.manual_seed(0)
            embedding = build_embedding(args.kind, tokenizer.get_vocab_size(), args.dim, **options)
        result = probe_geometry(embedding, tokenizer, k=args.k)
        print(json.dumps({k: v for k, v in result.items() if k != "words"}, indent=2))
        with torch.no_grad():
            result["retrieval"] = retrieval_probe(embedding.table(), tokenizer, k=args.k)
    print(format_retrieval(result["retrieval"]))
    _write_json(result, args.out)


def _probe_spelling(args: argparse.Namespace) -> None:
    from petra.probes import format_summary, pair_set, probe_spelling

    _check_out_file(args.out)
    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit must be at least 1, got {args.limit}")
    pairs = pair_set(args.pairs, args.limit)
    model, tokenizer = _probe_model(args)
    result = probe_spelling(model, tokenizer, pairs)
    print(format_summary(result["summary"]))
    _write_json(result, args.out)


def _probe_generate(args: argparse.Namespace) -> None:
    from petra.probes import forced_oov_generation

    _check_out_file(args.out)
    model, tokenizer = _probe_model(args)
    result = forced_oov_generation(
        model, tokenizer, args.prompt, args.span, args.bytes.encode("utf-8"), args.max_new_tokens
    )
    print(json.dumps(result, indent=2, ensure_ascii=False))
    _write_json(result, args.out)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="petra", description=__doc__)
    parser.add_argument("--version", action="version", version=f"petra {__version__}")
    parser.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help="import MODULE before the command, e.g. the file of a kind of your own "
        "(my_kind for my_kind.py; the current folder is searched first); may repeat",
    )
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
    _data_dir_argument(params)
    params.add_argument("--json", default=None, metavar="FILE", help="also write rows as JSON")
    params.set_defaults(handler=_params)

    train = commands.add_parser(
        "train",
        help="train a task (nli-sts, sts, distill, classify, lm) with a preset",
        description="Train TASK with the settings of a preset (petra/configs/NAME.json); "
        "--set section.key=value changes one (sections: model, train, data; e.g. "
        "--set model.embedding=fourier --set train.steps=500).",
    )
    train.add_argument("task", help=TASK_HELP)
    _run_arguments(train)
    train.add_argument("--out", default=None, help="run directory (default: runs/TASK-PRESET)")
    train.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    train.add_argument(
        "--init",
        metavar="DIR",
        help="start from the model saved in DIR (e.g. fine-tune an nli-sts model on sts); "
        "the same as --set train.init=DIR",
    )
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.set_defaults(handler=_train)

    evaluate = commands.add_parser(
        "eval",
        help="evaluate a saved model on a task's held-out data",
        description="Evaluate the model saved in DIR (a run's model/ or a checkpoint) on the "
        "held-out data of TASK as a preset defines it; prints one JSON object.",
    )
    evaluate.add_argument("task", help=TASK_HELP)
    evaluate.add_argument("--checkpoint", required=True, metavar="DIR")
    _run_arguments(evaluate)
    evaluate.add_argument(
        "--file", default=None, help="sentence tasks: an STS-B-format file to evaluate on"
    )
    evaluate.set_defaults(handler=_eval)

    comparison = commands.add_parser(
        "compare",
        help="train every embedding kind (and backbone) under one budget, side by side",
        description="One run per kind x backbone x seed with the same data, budget and seed; "
        "writes results.json, table.md and PNG plots into --out and prints the table.",
    )
    comparison.add_argument("task", help=TASK_HELP)
    comparison.add_argument("--kinds", default="learned,fourier,kronecker")
    comparison.add_argument("--backbones", default="standard")
    comparison.add_argument(
        "--seeds", type=_int_list, default=[0], help="comma-separated seeds (default: 0)"
    )
    _run_arguments(comparison)
    comparison.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="KEY=V1,V2",
        help="also vary a setting over these values (repeatable: every combination is an arm)",
    )
    sizing = comparison.add_mutually_exclusive_group()
    sizing.add_argument(
        "--budget",
        default=None,
        metavar="N",
        help="size every kind's embedding to N trainable parameters (65536, 65k, 1M), each "
        "by its own knob, closest without exceeding",
    )
    sizing.add_argument(
        "--budget-ratio",
        type=float,
        default=None,
        metavar="R",
        help="the budget as a fraction R of the learned V x d table",
    )
    comparison.add_argument(
        "--budget-tolerance",
        type=float,
        default=None,
        metavar="T",
        help=f"refuse a kind whose best size lies more than T (a fraction, default "
        f"{TOLERANCE:g}) below the budget",
    )
    comparison.add_argument("--out", default=None, help="default: runs/compare-TASK-PRESET")
    comparison.add_argument("--quiet", action="store_true", help="no progress bars")
    comparison.set_defaults(handler=_compare)

    reproduction = commands.add_parser(
        "reproduce",
        help="run the papers' claims with seeds, or write the report of their results",
        description="Run paper claims (see --list) into OUT/results/CLAIM.json, reusing "
        "finished runs and resuming interrupted ones; or write the Markdown report of a "
        "results folder (--report RESULTS_DIR --to FILE).",
    )
    reproduction.add_argument("claims", nargs="*", metavar="CLAIM", help="claim ids to run")
    reproduction.add_argument("--list", action="store_true", help="list the claims")
    reproduction.add_argument("--all", action="store_true", help="run every claim")
    reproduction.add_argument(
        "--seeds", type=int, default=3, help="seeds per arm (default: 3; measurements fix theirs)"
    )
    reproduction.add_argument(
        "--quick", action="store_true", help="1 seed and a short budget: a first look"
    )
    reproduction.add_argument(
        "--preset",
        default=None,
        help="run every arm on this preset instead of the claim's (e.g. tiny, pete-paper)",
    )
    reproduction.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a setting for every arm, after the claim's own (not one that defines the arms)",
    )
    reproduction.add_argument("--out", default="reproduction", help="default: %(default)s")
    reproduction.add_argument(
        "--report",
        nargs="+",
        metavar="RESULTS_DIR",
        help="write the report of a results folder; each further folder is the same claims run "
        "at another scale, a part of its own named for the folder",
    )
    reproduction.add_argument("--to", default="REPRODUCTION.md", help="the report's file")
    reproduction.add_argument(
        "--update-texts",
        nargs="+",
        metavar="RESULTS_DIR",
        help="give the results files of these folders today's registry texts where only the "
        "texts that describe a claim (title, the paper's figure and place, what differs) "
        "changed since their runs; a file whose protocol or comparisons changed is named",
    )
    reproduction.add_argument("--quiet", action="store_true", help="no progress bars")
    _data_dir_argument(reproduction)
    reproduction.set_defaults(handler=_reproduce)

    compression = commands.add_parser(
        "compress",
        help="swap a pretrained model's embedding, then recover its quality by distillation",
        description="Swap the embedding of a pretrained sentence encoder or causal LM for a "
        "petra embedding and distil the untouched model into it on offline text; reports the "
        "parameters and the quality before the swap, after it and after recovery "
        "(OUT/compress.json; the model in OUT/model). Resumes an interrupted run.",
    )
    compression.add_argument("--model", help="a model folder, or all-minilm-l6-v2 / smollm2-135m")
    compression.add_argument("--kind", help="an embedding kind (petra.embeddings.kinds())")
    compression.add_argument("--out", help="the run's folder")
    compression.add_argument(
        "--table", nargs="+", metavar="RUN_DIR", help="print finished runs side by side instead"
    )
    compression.add_argument(
        "--plot", metavar="FILE.png",
        help="with --table: also plot quality against the embedding's MiB, at the swap and after",
    )  # fmt: skip
    compression.add_argument("--factor-dim", type=int, default=None, help="learned: rank e")
    compression.add_argument("--head", default="tied", choices=("tied", "untied"),
                             help="for a tied output head (default: %(default)s)")  # fmt: skip
    compression.add_argument(
        "--start", default="fit", choices=("fit", "norms"),
        help="a computed kind's start: the least-squares fit of the old table, weighted by "
        "token frequency, or a random map at its row norms (default: %(default)s)",
    )  # fmt: skip
    compression.add_argument("--steps", type=int, default=1000, help="default: %(default)s")
    compression.add_argument("--batch-size", type=int, default=32, help="default: %(default)s")
    compression.add_argument("--lr", type=float, default=5e-5, help="the pretrained layers")
    compression.add_argument("--embedding-lr", type=float, default=1e-4, help="the new embedding")
    compression.add_argument("--seed", type=int, default=0)
    compression.add_argument(
        "--max-length", type=int, default=128, metavar="N",
        help="a causal LM: tokens per training and evaluation chunk (default: %(default)s)",
    )  # fmt: skip
    compression.add_argument(
        "--distil", default="hidden", choices=("output", "hidden", "pairs", "cosines"),
        help="match the teacher's outputs (the sentence vector, or the next-token "
        "distribution); them and every layer's token states; or, a sentence encoder, these "
        "and the cosines between a batch's sentences; or those cosines alone (default: "
        "%(default)s)",
    )  # fmt: skip
    compression.add_argument(
        "--embedding-steps", type=int, default=0, metavar="N",
        help="the first N steps train the new embedding alone (default: %(default)s)",
    )  # fmt: skip
    compression.add_argument(
        "--eval-every", type=int, default=None, metavar="N",
        help="measure the quality every N steps of the recovery (default: at the end only)",
    )  # fmt: skip
    compression.add_argument(
        "--eval-split", default="dev", choices=("dev", "train"),
        help="the split measured: choose settings on train, report dev (a sentence encoder: "
        "STS-B's; a causal LM: held-out Brown chunks, train the 64 after dev's 64) (default: "
        "%(default)s)",
    )  # fmt: skip
    compression.add_argument(
        "--eval-pairs", type=int, default=None, metavar="N",
        help="a sentence encoder: measure on the split's first N pairs (default: all)",
    )  # fmt: skip
    compression.add_argument(
        "--option", action="append", default=[], metavar="KEY=VALUE",
        help="an option of the embedding kind, e.g. pos_dim=8 for kronecker (repeatable)",
    )  # fmt: skip
    compression.add_argument("--quiet", action="store_true", help="no progress lines")
    _data_dir_argument(compression)
    compression.set_defaults(handler=_compress)

    probe = commands.add_parser("probe", help="probe a model: spelling, generate, geometry, norms")
    kinds = probe.add_subparsers(dest="probe", required=True, metavar="PROBE")
    spelling = kinds.add_parser("spelling", help="next-token stability under typos (causal LM)")
    spelling.add_argument("--checkpoint", required=True, metavar="DIR")
    spelling.add_argument(
        "--pairs", default="paper", metavar="SET|FILE",
        help="paper (default: the Kronecker paper's 110 pairs, 11 categories, typo inside the "
        "prompt), brown (Wikipedia's common misspellings in Brown sentences, the typo ending "
        "the prompt), brown-inside (the same, three words after the typo) or a JSON list of "
        "{clean, typo, category}",
    )  # fmt: skip
    spelling.add_argument(
        "--limit", type=int, default=None,
        help="at most this many pairs, the first of the set (default: all 110 paper pairs, "
        "200 of either brown set, every pair of a file)",
    )  # fmt: skip
    generate = kinds.add_parser(
        "generate",
        help="forced out-of-vocabulary generation (an embedding that reads raw bytes: "
        "embeds_bytes)",
    )
    generate.add_argument("--checkpoint", required=True, metavar="DIR")
    generate.add_argument("--prompt", required=True)
    generate.add_argument("--span", required=True, help="the part of the prompt to replace")
    generate.add_argument("--bytes", required=True, help="its replacement (UTF-8 text)")
    generate.add_argument("--max-new-tokens", type=int, default=20)
    geometry = kinds.add_parser(
        "geometry", help="neighbours (typographic or not), collisions, norms of a table"
    )
    geometry.add_argument(
        "--model", metavar="NAME|DIR",
        help="a pretrained model's input table: all-minilm-l6-v2, smollm2-135m or a folder",
    )  # fmt: skip
    geometry.add_argument("--checkpoint", metavar="DIR", help="a trained petra model")
    geometry.add_argument("--kind", default="fourier", help="a fresh embedding of this kind")
    geometry.add_argument("--dim", type=int, default=256)
    geometry.add_argument("--k", type=int, default=5, help="neighbours per word (paper: 5)")
    norms = kinds.add_parser("norms", help="embedding norm drift across a run")
    norms.add_argument("--run", required=True, metavar="DIR")
    handlers = {
        spelling: _probe_spelling,
        generate: _probe_generate,
        geometry: _probe_geometry,
        norms: _probe_norms,
    }
    for parser_, handler in handlers.items():
        parser_.add_argument("--out", default=None, help="write the result as JSON here")
        if parser_ is not norms:
            parser_.add_argument("--tokenizer", default=None, help="default: the checkpoint's")
            _data_dir_argument(parser_)
        parser_.set_defaults(handler=handler)
    return parser


def _run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", default="default", help="preset name (default: default)")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a setting"
    )
    _data_dir_argument(parser)


def _data_dir_argument(parser: argparse.ArgumentParser) -> None:
    """`--data-dir`, for a command that reads data: `main` makes it the run's data folder."""
    parser.add_argument(
        "--data-dir", default=None, metavar="DIR", help="the data folder (default: $PETRA_DATA)"
    )


# OSErrors about a path a user gave and can fix: none there, a folder where a file belongs or
# the reverse, a file in the way, no permission (and a name too long: errno ENAMETOOLONG)
USER_PATH_ERRORS = (
    FileNotFoundError, IsADirectoryError, NotADirectoryError, FileExistsError, PermissionError
)  # fmt: skip
LONGEST_SHOWN_PATH = 200


def _user_path_error(error: OSError) -> str | None:
    """One line for an OSError about a path that the user can fix, else None (an internal
    error, whose traceback is kept)."""
    if error.filename is None:
        return None
    if not (isinstance(error, USER_PATH_ERRORS) or error.errno == errno.ENAMETOOLONG):
        return None
    path = os.fsdecode(error.filename)
    if len(path) > LONGEST_SHOWN_PATH:
        path = f"{path[:60]}... (a path of {len(path)} characters)"
    return f"{error.strerror}: {path}; check the path"


def _import_modules(names: list[str]) -> None:
    """Import each module of `--import`, the current folder searched first (and only while
    importing: a file there never stands in for a library petra imports later), so that
    the kinds its file registers are known to the command. What the module raises of the
    errors a command reports in one line is reported so, under its name."""
    added = bool(names) and os.getcwd() not in sys.path
    if added:
        sys.path.insert(0, os.getcwd())
    try:
        for name in names:
            try:
                importlib.import_module(name)
            except (ImportError, ValueError, TypeError) as error:
                hint = " (name the module, without .py)" if name.endswith(".py") else ""
                raise ImportError(f"--import {name}: {error}{hint}") from None
    finally:
        if added:
            sys.path.remove(os.getcwd())


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with use_data_dir(getattr(args, "data_dir", None)):
            _import_modules(args.imports)
            args.handler(args)
    except OSError as error:  # petra's own FileNotFoundError(message) has no filename
        message = _user_path_error(error)
        if message is None and not isinstance(error, FileNotFoundError):
            raise
        message = message or str(error)
    except (ValueError, TypeError, FloatingPointError, ImportError) as error:
        message = str(error)
    else:
        return 0
    print(f"petra {args.command}: error: {message}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
