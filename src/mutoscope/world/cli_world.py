"""`mutoscope world sample | render`: write procedural world clips as MP4s with their records.

`sample` writes DIR/clip_000.mp4 ... (each with its JSON record embedded and as a sidecar), one
line per clip in DIR/captions.jsonl, and DIR/contact_sheet.png. Clip i is sample i of
`WorldStream(seed=...)`, so the files show exactly what training sees. `render` draws one spec.
Bad input raises UserError (one line, exit 2) before anything is written.
"""

from __future__ import annotations

import argparse
import json
import os
import re
from pathlib import Path

from mutoscope.errors import UserError

MAX_SIDE = 7680  # pixels (8K); larger is a typo, not a request
MAX_SECONDS = 600.0
MAX_FPS = 240.0


def add_parser(subparsers) -> None:
    world = subparsers.add_parser(
        "world",
        help="render captioned clips of the procedural world",
        description=__doc__.splitlines()[0],
    )
    world.set_defaults(func=lambda args: _print_help(world))
    sub = world.add_subparsers(dest="world_command", metavar="SUBCOMMAND")

    p = sub.add_parser(
        "sample",
        help="sample N clips with captions, claims and a contact sheet",
        description="Sample N world clips: DIR/clip_000.mp4 ..., DIR/captions.jsonl and "
        "DIR/contact_sheet.png. The same seed gives the same clips.",
    )
    p.add_argument("--n", type=int, default=16, help="number of clips (default 16)")
    p.add_argument("--out", required=True, help="output directory (created if missing)")
    p.add_argument("--seed", type=int, default=0, help="stream seed (default 0)")
    p.add_argument("--kind", default=None, help="only this scene kind (default: all kinds)")
    p.add_argument("--seconds", type=float, default=2.0, help="clip length (default 2)")
    _add_video_args(p)
    p.set_defaults(func=run_sample)

    r = sub.add_parser(
        "render",
        help="render one scene spec (JSON) to an MP4",
        description="Render a scene spec (a JSON file: a spec, or a record with a `spec` field, "
        "such as a clip's sidecar) to an MP4 with its caption and claims in the record.",
    )
    r.add_argument("spec", help="scene spec JSON file")
    r.add_argument("--out", required=True, help="output MP4 path")
    _add_video_args(r)
    r.set_defaults(func=run_render)


def _add_video_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--size", default=None, help="WIDTHxHEIGHT in pixels (default 64x64)")
    p.add_argument("--width", type=int, default=None, help="width in pixels (instead of --size)")
    p.add_argument("--height", type=int, default=None, help="height in pixels (instead of --size)")
    p.add_argument("--fps", type=float, default=8.0, help="frames per second (default 8)")


def _print_help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def parse_size(args: argparse.Namespace) -> tuple[int, int]:
    """(width, height) from --size WxH or --width / --height; UserError when out of bounds."""
    if args.size is not None and (args.width is not None or args.height is not None):
        raise UserError("world.size.conflict", "give --size or --width/--height, not both")
    width, height = 64, 64
    if args.size is not None:
        m = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", args.size)
        if not m:
            raise UserError("world.size.invalid", f"--size must look like 64x64, got {args.size!r}")
        width, height = int(m[1]), int(m[2])
    width = args.width if args.width is not None else width
    height = args.height if args.height is not None else height
    if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE):
        raise UserError("world.size.range", f"width and height must be 1..{MAX_SIDE}, got {width}x{height}")
    return width, height


def _check_fps(fps: float) -> None:
    if not 0 < fps <= MAX_FPS:  # also false for NaN
        raise UserError("world.fps.range", f"--fps must be in (0, {MAX_FPS:g}], got {fps:g}")


def _writable_dir(path: Path) -> Path:
    """Create `path` if needed and check that files can be made in it."""
    if path.exists() and not path.is_dir():
        raise UserError("world.out.not_dir", f"not a directory: {path}")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError("world.out.unwritable", f"cannot create {path}: {e.strerror}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise UserError("world.out.unwritable", f"cannot write into {path}")
    return path


def run_sample(args: argparse.Namespace) -> int:
    if args.n <= 0:
        raise UserError("world.sample.n", f"--n must be at least 1, got {args.n}")
    if not 0 < args.seconds <= MAX_SECONDS:
        raise UserError("world.seconds.range", f"--seconds must be in (0, {MAX_SECONDS:g}]")
    width, height = parse_size(args)
    _check_fps(args.fps)
    from mutoscope.world.sample import KINDS

    if args.kind is not None and args.kind not in KINDS:
        raise UserError("world.kind", f"unknown --kind {args.kind!r}; one of: {', '.join(KINDS)}")
    out = _writable_dir(Path(args.out))

    from mutoscope.data.world_stream import WorldStream
    from mutoscope.post.mp4 import write_mp4, write_poster
    from mutoscope.world.contact_sheet import contact_sheet

    stream = WorldStream(
        seed=args.seed, width=width, height=height, fps=args.fps, seconds=args.seconds,
        kinds=[args.kind] if args.kind else None, as_tensor=False,
    )  # fmt: skip
    digits = max(3, len(str(args.n - 1)))
    lines, sheet_rows = [], []
    for i in range(args.n):
        item = stream.sample(i)
        name = f"clip_{i:0{digits}d}.mp4"
        entry = {
            "file": name,
            "caption": item["caption"],
            "claims": json.loads(item["claims"]),
            "spec": json.loads(item["spec"]),
        }
        record = {**entry, "seed": args.seed, "index": i, "generator": "mutoscope.world"}
        del record["file"]
        write_mp4(out / name, item["video"], args.fps, record)
        lines.append(json.dumps(entry))
        sheet_rows.append((item["video"], f"{name}: {item['caption']}"))
        print(f"{out / name}: {item['caption']}")
    _write_text(out / "captions.jsonl", "\n".join(lines) + "\n")
    write_poster(out / "contact_sheet.png", contact_sheet(sheet_rows))
    print(f"wrote {args.n} clips, captions.jsonl and contact_sheet.png to {out}")
    return 0


def run_render(args: argparse.Namespace) -> int:
    width, height = parse_size(args)
    _check_fps(args.fps)
    spec = _load_spec(Path(args.spec))
    out = Path(args.out)
    if out.suffix.lower() != ".mp4":
        raise UserError("world.out.suffix", f"--out must end in .mp4, got {out.name}")
    _writable_dir(out.parent)

    from mutoscope.post.mp4 import write_mp4
    from mutoscope.world.caption import caption
    from mutoscope.world.render import render

    text = caption(spec)
    record = {
        "caption": text.text,
        "claims": [c.to_dict() for c in text.claims],
        "spec": spec.to_dict(),
        "generator": "mutoscope.world",
    }
    write_mp4(out, render(spec, width, height, args.fps), args.fps, record)
    print(f"{out}: {text.text}")
    return 0


def _load_spec(path: Path):
    from mutoscope.world.spec import SceneSpec

    if not path.is_file():
        raise UserError("world.spec.missing", f"no such spec file: {path}")
    try:
        data = json.loads(path.read_text())
        if isinstance(data, dict) and "spec" in data and "objects" not in data:
            data = data["spec"]  # a clip's record or sidecar
        return SceneSpec.from_dict(data)
    except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError) as e:
        detail = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UserError("world.spec.invalid", f"not a valid scene spec: {path}: {detail}") from None


def _write_text(path: Path, text: str) -> None:
    """Write a text file atomically: a temporary beside it, then os.replace."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
