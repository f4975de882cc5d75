"""`python -m edgeship.fleet {plan,summary}`: the controller-side helpers the fleet playbooks call."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from edgeship.errors import EdgeshipError
from edgeship.fleet.plan import make_plan
from edgeship.fleet.playbook import cli_names


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edgeship.fleet", description="controller-side helpers for the fleet playbooks")
    commands = parser.add_subparsers(dest="command", required=True)
    plan_parser = commands.add_parser("plan", help="pack each board's bundle; boards as a JSON list on stdin; plan JSON on stdout")
    plan_parser.add_argument("--artifacts", required=True, help="artifacts root folder")
    plan_parser.add_argument("--models", default="", help="comma-separated model names (default: every model found)")
    plan_parser.add_argument("--label", default="", help="free-text label kept in release.json (a new label makes a new release)")
    plan_parser.add_argument("--signing-key", default="", help="SSH key that signs each bundle (boards refuse an unsigned one)")
    summary_parser = commands.add_parser("summary", help="print the benchmark summary table of results/<run-id>")
    summary_parser.add_argument("run_dir")
    summary_parser.add_argument("--hosts", default="", help="comma-separated hosts that were asked to run (missing ones are reported)")
    args = parser.parse_args(argv)
    try:
        if args.command == "plan":
            try:
                boards = json.load(sys.stdin)
            except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as error:
                raise EdgeshipError(f"the boards on stdin are not JSON ({type(error).__name__}); pass them as a JSON list") from None
            models = cli_names(args.models, "--models") or None
            key = Path(args.signing_key).expanduser() if args.signing_key else None
            print(json.dumps(make_plan(boards, Path(args.artifacts), models, label=args.label, signing_key=key)))
            return 0
        from edgeship.report.fleet_table import write_summary

        print(write_summary(Path(args.run_dir), [h for h in args.hosts.split(",") if h]))
        return 0
    except EdgeshipError as error:
        print(f"edgeship: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
