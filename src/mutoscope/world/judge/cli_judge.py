"""`mutoscope judge VIDEO (--prompt TEXT | --claims FILE.json) [--json]`: check claims on a video.

Prints each claim with PASS or FAIL and its evidence, then the consistency score. Exit code 0 when
every claim passes, 1 when one fails, 2 on bad input (one line on stderr).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mutoscope.errors import UserError


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "judge",
        help="check a prompt's claims against a video, from its pixels",
        description=__doc__.splitlines()[0],
    )
    p.add_argument("video", help="an MP4 (or any video PyAV reads)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--prompt", help="a prompt or caption in the world's words")
    src.add_argument("--claims", help="a JSON file: a list of claims (claims_to_json's format)")
    p.add_argument("--fps", type=float, default=None, help="override the file's frame rate")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def _load_claims(path: str):
    from mutoscope.world.claims import claims_from_json

    p = Path(path)
    if not p.is_file():
        raise UserError("judge.claims.missing", f"no such claims file: {p}")
    try:
        return claims_from_json(p.read_text())
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise UserError("judge.claims.invalid", f"cannot read claims from {p}: {e}") from None


def run(args: argparse.Namespace) -> int:
    from mutoscope.world.judge import judge

    if not Path(args.video).is_file():
        raise UserError("judge.video.missing", f"no such video file: {args.video}")
    claims = _load_claims(args.claims) if args.claims else None
    if args.prompt is not None:
        from mutoscope.world.grammar import parse_prompt

        claims = parse_prompt(args.prompt)  # raises UserError on a prompt it cannot read
    report = judge(args.video, claims, fps=args.fps)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        for v in report.verdicts:
            print(f"{'PASS' if v.passed else 'FAIL'}  {v.claim.describe()}")
            print(f"      {v.evidence}")
        c = report.consistency
        parts = ", ".join(f"{k} {v:.2f}" for k, v in c.parts.items())
        print(f"claims: {report.passed}/{len(report.verdicts)} pass")
        print(f"consistency: {c.score:.1f}/100 ({parts})")
        for line in report.scene_summary():
            print(f"seen: {line}")
    return 0 if report.all_passed else 1
