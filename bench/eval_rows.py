"""One claims table over eval reports' rows: shards of one run merged, runs side by side.

    python bench/eval_rows.py "image cfg 8=out/a/rows.jsonl" "image cfg 4=out/b1/rows.jsonl,out/b2/rows.jsonl"

Each argument is NAME=ROWS[,ROWS...]: the rows of one model's run (`mutoscope eval --n N --skip S`
shards, say), its column in the table. The model's rows only (not the baselines'). With --common,
only the prompts every column has: a paired comparison while a run is still going.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mutoscope.eval.report import markdown, summarise


def read(spec: str) -> tuple[str, list[dict]]:
    name, _, paths = spec.partition("=")
    if not paths:
        raise SystemExit(f"eval_rows: {spec!r} is not NAME=ROWS[,ROWS...]")
    rows = []
    for path in paths.split(","):
        for line in Path(path).read_text().splitlines():
            row = json.loads(line)
            if row["source"] == "model":
                rows.append(row | {"source": name})
    return name, rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", help="NAME=ROWS[,ROWS...]")
    ap.add_argument("--common", action="store_true", help="only the prompts every run has judged")
    args = ap.parse_args()
    runs = dict(read(spec) for spec in args.runs)
    if args.common:
        shared = set.intersection(*({r["index"] for r in rows} for rows in runs.values()))
        runs = {name: [r for r in rows if r["index"] in shared] for name, rows in runs.items()}
    print(markdown(summarise([r for rows in runs.values() for r in rows])))


if __name__ == "__main__":
    main()
