"""``python -m tools.tune --stack prod --rows 100000000``: the capacity and cost plan of one day's run.

Prints Markdown (``--json`` for machine-readable output). Without ``--rows`` it plans the volume the stack
file states it is tuned for. ``--apply`` then writes the recommended values into ``Pulumi.<stack>.yaml``
(``tools/tune/apply.py``). Bad input (an unknown price name, a stack file that does not validate, an item
too big for a batch) exits with status 2 and a message naming it.
"""

from __future__ import annotations

import argparse
import sys

from spec.settings import SettingsError
from tools import stackfile
from tools.tune import apply, report
from tools.tune.packing import BatchingError
from tools.tune.prices import PriceOverrideError
from tools.tune.stack import WHAT_IF_FIELDS, plan_stack


def _what_if(text: str) -> tuple[str, int]:
    key, sep, value = text.partition("=")
    if not sep or key not in WHAT_IF_FIELDS:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected <setting>=<integer>, setting one of {', '.join(WHAT_IF_FIELDS)}"
        )
    try:
        return key, int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: {value!r} is not an integer") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.tune", description=__doc__.splitlines()[0])
    parser.add_argument("--stack", required=True, help="stage whose Pulumi.<stack>.yaml to plan for")
    parser.add_argument(
        "--rows", type=int, help="readings in the day to process (default: the volume the stack file states)"
    )
    parser.add_argument(
        "--item-bytes", type=float, help="measured average map item size (default: estimated)"
    )
    parser.add_argument(
        "--record-bytes", type=float, help="measured average analysis record, newline included"
    )
    parser.add_argument("--ms-per-batch", type=float, help="detector duration per batch (default: benchmark)")
    parser.add_argument(
        "--price", action="append", default=[], metavar="NAME=VALUE", help="override a price/quota/assumption"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        type=_what_if,
        metavar="SETTING=N",
        help="what-if setting change",
    )
    parser.add_argument("--overlapping-runs", type=int, default=1, help="runs open at once (backfills)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of Markdown")
    parser.add_argument(
        "--no-benchmark",
        action="store_true",
        help="use prices.yaml's detector timing even when build/benchmarks/detector.json exists",
    )
    parser.add_argument(
        "--apply", action="store_true", help="write the recommended values into Pulumi.<stack>.yaml"
    )
    args = parser.parse_args(argv)
    if args.apply and (args.set or args.price):
        parser.error(
            "--apply writes the plan of the stack file as it is: leave out --set and --price "
            "(lasting price or quota overrides belong in its priceOverrides)"
        )
    try:
        rows = args.rows if args.rows is not None else apply.stated_volume(args.stack)
        if rows is None:
            raise ValueError(
                f"no --rows (ROWS=...) given and {stackfile.path(args.stack).name} states no volume "
                "(a comment '# Capacity settings tuned for <n> readings a day')"
            )
        plan = plan_stack(
            args.stack,
            rows,
            item_bytes=args.item_bytes,
            record_bytes=args.record_bytes,
            ms_per_batch=args.ms_per_batch,
            price_overrides=args.price,
            what_if=dict(args.set),
            overlapping_runs=args.overlapping_runs,
            **({"benchmark": None} if args.no_benchmark else {}),
        )
        changes = apply.apply(plan) if args.apply else None
    except (PriceOverrideError, SettingsError, BatchingError, ValueError) as error:
        print(f"tune: {error}", file=sys.stderr)
        return 2
    print(report.to_json(plan) if args.json else report.to_markdown(plan), end="")
    if changes is not None:
        file = stackfile.path(args.stack).name
        summary = "; ".join(str(c) for c in changes) or "already the recommended values"
        print(f"\napplied to {file} (tuned for {rows:,} readings a day): {summary}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
