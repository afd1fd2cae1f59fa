"""`mutoscope verify FILE.mp4`: is the invisible watermark there, and what does the record say?

Exit status: 0 when the watermark is present (and agrees with the record, when the record names
one), 1 when it is not, 2 when the file cannot be read as a video.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mutoscope.errors import UserError


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "verify",
        help="check a video's invisible watermark and print its generation record",
        description=__doc__.splitlines()[0],
        epilog="exit status: 0 verified, 1 no watermark (or it contradicts the record), 2 bad input",
    )
    p.add_argument("file", type=Path, help="an MP4 written by mutoscope (or any video PyAV can read)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mutoscope.post.mp4 import read_frames, read_record
    from mutoscope.post.watermark import inspect, matches_claim

    path: Path = args.file
    if not path.is_file():
        raise UserError("verify.file.missing", f"no such file: {path}")
    try:
        frames = read_frames(path)
        record = read_record(path)
    except Exception as e:  # PyAV raises many types for a file that is not a video
        raise UserError("verify.file.unreadable", f"cannot read {path} as a video: {e}") from None

    found = inspect(frames)
    claimed = ((record or {}).get("watermark") or {}).get("payload")
    agrees = matches_claim(found.payload, claimed)
    verified = found.present and agrees
    if args.json:
        print(
            json.dumps(
                {"file": str(path), "verified": verified, "watermark": found.to_dict(), "record": record}
            )
        )
        return 0 if verified else 1

    w = found.to_dict()
    if found.present:
        label = f"{w['payload_text']!r}" if w["payload_text"] else w["payload"]
        alone = f"{found.frames_marked}/{found.frames} frames agree"
        print(f"watermark: present, payload {label} ({alone}, confidence {found.confidence:.2f})")
    else:
        print(f"watermark: not found in {found.frames} frames (confidence {found.confidence:.2f})")
    if found.present and not agrees:
        print(f"watermark: does not match the record's payload {claimed}")
    if record is None:
        print("record: none embedded")
    else:
        print("record:")
        print(json.dumps(record, indent=2, sort_keys=True))
    print(f"{path}: {'verified' if verified else 'NOT verified'}")
    return 0 if verified else 1
