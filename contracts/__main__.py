"""`python -m contracts`: GX Data Docs and the quarantine report of a warehouse."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from contracts import rules
from contracts.report import write_reports
from pipeline.config import spark_settings_from_environment
from pipeline.errors import ClickstreamError
from pipeline.run.session import build_session


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m contracts", description=__doc__)
    parser.add_argument("--warehouse", type=Path, required=True, help="Delta warehouse directory")
    parser.add_argument(
        "--report-dir",
        type=Path,
        default=Path("reports") / "contracts",
        help="where to write quarantine.json, quarantine.html and data_docs/ "
        "(default reports/contracts)",
    )
    parser.add_argument("--run-id", default=None, help="count only this run (default: all runs)")
    parser.add_argument(
        "--no-gx", action="store_true", help="skip Great Expectations (no Data Docs)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Write the reports; 0 on success, 2 when the warehouse or Spark cannot be used."""
    args = _parser().parse_args(argv)
    if not (args.warehouse / "_event_log").is_dir():
        print(
            f"error: {args.warehouse} has no _event_log table; run the pipeline with "
            "expectations first (clickstream run --expectations contracts.rules).",
            file=sys.stderr,
        )
        return 2
    try:
        spark = build_session(spark_settings_from_environment())
    except ClickstreamError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        written = write_reports(
            spark,
            args.warehouse.resolve(),
            rules.expectations(),
            args.report_dir,
            run_id=args.run_id,
            with_gx=not args.no_gx,
        )
    finally:
        spark.stop()
    for rule in written.quarantine.rules:
        if rule.failed:
            print(f"{rule.table}.{rule.rule} ({rule.action}): {rule.failed:,} failed")
    print(f"quarantine report: {written.html_path} and {written.json_path}")
    if written.data_docs_index:
        print(f"Great Expectations Data Docs: {written.data_docs_index}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
