"""The benchmark report: pass rate per claim type per source (model, ground truth, untrained), the
consistency score, a markdown table and one bar plot per claim type; beside it the pass rate by
what of the prompt is novel (a held-out pair, a held-out color, shape or motion word), which says
whether a shortfall is the model's drawing or its generalisation."""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path

from mutoscope.eval.scene_match import match_summary
from mutoscope.world.claims import ClaimType

SOURCE_ORDER = ("ground truth", "ground truth through the VAE", "model", "untrained")


NOTHING_NOVEL = "nothing held out"


def summarise(rows: list[dict]) -> dict[str, dict]:
    """{source: {"types": {claim type: (passed, total)}, "overall": (passed, total), "consistency": median,
    "prompts": n, "seconds": mean, "novelty": {tag: (passed, total)}, "scene": {"object_cover": mean,
    "blobs": mean}, "objects": scene_match.match_summary}}; a prompt with two novel parts counts under
    both tags; rows of older reports lack "scene" and "objects"."""
    out: dict[str, dict] = {}
    by_source: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_source[r["source"]].append(r)
    for source, rs in by_source.items():
        types: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        novel: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for r in rs:
            for v in r["verdicts"]:
                types[v["type"]][0] += bool(v["passed"])
                types[v["type"]][1] += 1
            if "novelty" in r:  # rows of older reports lack it
                for tag in r["novelty"] or [NOTHING_NOVEL]:
                    novel[tag][0] += sum(bool(v["passed"]) for v in r["verdicts"])
                    novel[tag][1] += len(r["verdicts"])
        passed = sum(p for p, _ in types.values())
        total = sum(t for _, t in types.values())
        out[source] = {
            "types": {k: tuple(v) for k, v in types.items()},
            "overall": (passed, total),
            "consistency": statistics.median(r["consistency"]["score"] for r in rs),
            "prompts": len(rs),
            "seconds": statistics.mean(r["seconds"] for r in rs),
            "novelty": {k: tuple(v) for k, v in sorted(novel.items())},
        }
        scenes = [r["scene"] for r in rs if "scene" in r]
        if scenes:
            out[source]["scene"] = {k: statistics.mean(s[k] for s in scenes) for k in scenes[0]}
        matches = [r["objects"] for r in rs if "objects" in r]
        if matches:
            out[source]["objects"] = match_summary(matches)
    return out


def _pct(pt: tuple[int, int] | None) -> str:
    if not pt or not pt[1]:
        return "-"
    return f"{100 * pt[0] / pt[1]:.1f}% ({pt[0]}/{pt[1]})"


def _sources(summary: dict) -> list[str]:
    return sorted(summary, key=lambda s: SOURCE_ORDER.index(s) if s in SOURCE_ORDER else len(SOURCE_ORDER))


def markdown(summary: dict) -> str:
    """The table: a row per claim type, a column per source, then overall and consistency."""
    sources = _sources(summary)

    def row(name: str, cell) -> str:
        return f"| {name} | " + " | ".join(cell(summary[s]) for s in sources) + " |"

    lines = ["| claim type | " + " | ".join(sources) + " |", "|---|" + "---|" * len(sources)]
    for t in ClaimType:
        if any(t.value in summary[s]["types"] for s in sources):
            lines.append(row(t.value, lambda x, t=t: _pct(x["types"].get(t.value))))
    lines.append(row("**overall**", lambda x: f"**{_pct(x['overall'])}**"))
    lines.append(row("consistency (median)", lambda x: f"{x['consistency']:.1f}"))
    if all("scene" in summary[s] for s in sources):
        cover = lambda x: f"{x['scene']['object_cover']:.3f}"  # noqa: E731
        lines.append(row("object cover (mean share of the frame)", cover))
        lines.append(row("object blobs a frame (mean)", lambda x: f"{x['scene']['blobs']:.2f}"))
    if all("objects" in summary[s] for s in sources):
        share = lambda key: lambda x: f"{100 * x['objects'][key]:.1f}%"  # noqa: E731
        lines.append(row("objects seen that the scene has (precision)", share("precision")))
        lines.append(row("scene objects seen (recall)", share("recall")))
        lines.append(row("clips with the scene's objects and no other", share("exact")))
        lines.append(row("extra objects a clip (mean)", lambda x: f"{x['objects']['extra']:.2f}"))
    lines.append(row("prompts", lambda x: str(x["prompts"])))
    lines.append(row("seconds per prompt", lambda x: f"{x['seconds']:.2f}"))
    return "\n".join(lines) + "\n"


def novelty_markdown(summary: dict) -> str:
    """A row per novelty tag (all the claims of the prompts that carry it), a column per source."""
    sources = _sources(summary)
    tags = sorted({t for s in sources for t in summary[s].get("novelty", {})})
    if not tags:
        return ""
    lines = ["| novel in the prompt | " + " | ".join(sources) + " |", "|---|" + "---|" * len(sources)]
    for t in tags:
        cells = (_pct(summary[s].get("novelty", {}).get(t)) for s in sources)
        lines.append(f"| {t} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(summary: dict, path: Path) -> Path:
    """One panel per claim type: the pass rate of each source, with the 80% bar drawn in."""
    import matplotlib

    matplotlib.use("Agg")  # no display; set here, not at import, to keep imports side-effect free
    import matplotlib.pyplot as plt

    sources = _sources(summary)
    types = [t.value for t in ClaimType if any(t.value in summary[s]["types"] for s in sources)]
    cols = 3
    rows = -(-len(types) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), squeeze=False)
    colors = {"ground truth": "#7a8896", "model": "#3b7dd8", "untrained": "#d0a040"}
    for ax, t in zip(axes.flat, types, strict=False):
        rates = []
        for s in sources:
            p, n = summary[s]["types"].get(t, (0, 0))
            rates.append(100 * p / n if n else 0.0)
        ax.bar(sources, rates, color=[colors.get(s, "#888") for s in sources])
        ax.axhline(80, color="#c33", lw=1, ls="--")
        ax.set_ylim(0, 100)
        ax.set_title(t)
        ax.tick_params(axis="x", labelsize=8)
    for ax in list(axes.flat)[len(types) :]:
        ax.axis("off")
    fig.suptitle("claims passed by the judge (%)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
