"""Why shape claims fail, from eval reports: the object's color not seen at all, or seen in a wrong shape.

`python bench/claim_failures.py out/eval/rows.jsonl [more rows.jsonl ...]` prints, per report and
source, the shape claims ("a white object is a ring") split three ways, and the mean object cover and
blob count a frame. Of the wrong-shape failures, "another's shape" counts those where the color was
seen in the shape the prompt gives another object ("a white ring and a red star": a white star), the
binding failure, against a shape nobody asked for. (Cover and blobs: eval/runner.painted; for reports
older than those columns, read again from their videos.) A model that paints too much shows many
wrong-shape failures and a cover above the truth's; one that draws too little, the color unseen.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
from collections import Counter, defaultdict

SHAPES = ("circle", "square", "triangle", "star", "ring", "person")


def _painted_again(video: str) -> dict[str, float]:
    from mutoscope.eval.runner import painted
    from mutoscope.world.judge import load_video
    from mutoscope.world.judge.perception import perceive

    return painted(perceive(load_video(video)[0]))


def breakdown(rows: list[dict]) -> dict[str, dict]:
    """{source: {"shape": Counter(passed / color seen, wrong shape / color not seen), "cover", "blobs"}}."""
    out: dict[str, dict] = defaultdict(lambda: {"shape": Counter(), "scenes": []})
    for r in rows:
        s = out[r["source"]]
        shape_claims = [v for v in r["verdicts"] if v["type"] == "shape"]
        for v in shape_claims:
            if v["passed"]:
                s["shape"]["passed"] += 1
            elif v["evidence"].endswith("seen: none"):  # verdicts.shape: no object of that color
                s["shape"]["color not seen"] += 1
            else:
                s["shape"]["color seen, wrong shape"] += 1
                color = v["claim"]["subject"]["color"]
                others = {
                    w["claim"]["value"] for w in shape_claims if w["claim"]["subject"]["color"] != color
                }
                seen = set(re.findall(rf"\b{color} ({'|'.join(SHAPES)})\b", v["evidence"]))
                s["shape"]["another's shape"] += bool(seen & (others - {v["claim"]["value"]}))
        s["scenes"].append(r["scene"] if "scene" in r else _painted_again(r["video"]))
    for s in out.values():
        scenes = s.pop("scenes")
        for key in ("object_cover", "blobs"):
            s[key] = statistics.mean(x[key] for x in scenes)
    return dict(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rows", nargs="+", help="rows.jsonl of mutoscope eval runs")
    args = parser.parse_args()
    print("| report | source | shape passed | color seen, wrong shape | of them, another's shape "
          "| color not seen | cover | blobs |")  # fmt: skip
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for path in args.rows:
        with open(path) as f:
            rows = [json.loads(line) for line in f]
        for source, s in breakdown(rows).items():
            c = s["shape"]
            n = c["passed"] + c["color seen, wrong shape"] + c["color not seen"]
            cells = [f"{c[k]} ({100 * c[k] / max(n, 1):.0f}%)" for k in
                     ("passed", "color seen, wrong shape", "another's shape", "color not seen")]  # fmt: skip
            cover, blobs = f"{s['object_cover']:.3f}", f"{s['blobs']:.2f}"
            print(f"| {path} | {source} | " + " | ".join(cells) + f" | {cover} | {blobs} |")


if __name__ == "__main__":
    main()
