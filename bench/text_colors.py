"""Does the text encoder know the dev suite's held-out color words? And does a model draw them?

    .venv/bin/python bench/text_colors.py [--rows out/eval_dev/rows.jsonl ...]

1. MiniLM alone: a linear read-out of the token states of the world's color words (logistic
   regression, fit on the training synonyms in several caption contexts) applied to the held-out
   ones: how often it names their color. Beside it, the nearest training word by cosine.
2. With --rows (`mutoscope eval --suite dev` reports): for every color claim about an object whose
   color the prompt names with a held-out word, how often it passed, split by whether the prompt
   also names that color with a training word.
"""

from __future__ import annotations

import argparse
import json
import os
import re
from collections import defaultdict

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

CONTEXTS = ("A {} ball moves to the left.", "In front of a brick wall, a {} square rests.",
            "A small {} star spins.", "Two {} triangles slide up.", "The {} ring grows larger.",
            "A large {} person waves against the starry sky.",
            "With the camera panning left, a {} disk bounces.")  # fmt: skip


def word_state(encoder, sentence: str, word: str):
    """The mean of MiniLM's states over the tokens of `word` in `sentence`."""
    states = encoder.encode([sentence])[0][0]
    start = sentence.index(word)
    offsets = encoder.tokenizer.encode(sentence).offsets
    idx = [i for i, (a, b) in enumerate(offsets) if start <= a and b <= start + len(word) and b > a]
    return states[idx].mean(0)


def probe(encoder) -> list[dict]:
    import torch

    from mutoscope.world.holdout import HELD_OUT_WORDS
    from mutoscope.world.lexicon import COLOR_WORDS

    classes = sorted(COLOR_WORDS)
    train, held = [], []
    for color, words in COLOR_WORDS.items():
        for w in words:
            for c in CONTEXTS:
                (held if w in HELD_OUT_WORDS else train).append(
                    (w, classes.index(color), word_state(encoder, c.format(w), w))
                )
    x = torch.stack([s for *_, s in train])
    y = torch.tensor([k for _, k, _ in train])
    mu, sd = x.mean(0), x.std(0) + 1e-6
    torch.manual_seed(0)
    read_out = torch.nn.Linear(x.shape[1], len(classes))
    opt = torch.optim.Adam(read_out.parameters(), lr=1e-2, weight_decay=1e-3)
    for _ in range(500):
        loss = torch.nn.functional.cross_entropy(read_out((x - mu) / sd), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    rows = []
    for w in sorted({w for w, *_ in held}):
        mine = [(k, s) for v, k, s in held if v == w]
        right = sum(int(read_out((s - mu) / sd).argmax()) == k for k, s in mine)
        near = max(train, key=lambda t: float(torch.cosine_similarity(mine[0][1], t[2], dim=0)))
        rows.append({"word": w, "color": classes[mine[0][0]], "read_out_right": f"{right}/{len(mine)}",
                     "nearest_training_word": near[0]})  # fmt: skip
    return rows


def claims(paths: list[str]) -> list[dict]:
    """Color claims about objects named by a held-out color word, per report."""
    from mutoscope.world.holdout import HELD_OUT_WORDS_BY_KIND
    from mutoscope.world.lexicon import COLOR_WORDS

    color_of = {w: c for c, ws in COLOR_WORDS.items() for w in ws}
    out = []
    for path in paths:
        tally = defaultdict(lambda: [0, 0])
        with open(path) as f:
            reports = [json.loads(line) for line in f]
        for r in reports:
            words = set(re.findall(r"[a-z]+", r["prompt"].lower()))
            for w in words & HELD_OUT_WORDS_BY_KIND["color"]:
                color = color_of[w]
                also = any(v in words for v in COLOR_WORDS[color] if v != w and " " not in v)
                for v in r["verdicts"]:
                    if v["type"] == "color" and v["claim"]["value"] == color:
                        t = tally[("also a training word" if also else "held-out word only", w)]
                        t[0] += bool(v["passed"])
                        t[1] += 1
        for (how, w), (p, n) in sorted(tally.items()):
            out.append({"rows": path, "named": how, "word": w, "passed": f"{p}/{n}"})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--rows", nargs="*", default=[], help="rows.jsonl of `mutoscope eval --suite dev` reports"
    )
    args = ap.parse_args()
    from mutoscope.text import TextEncoder

    for row in probe(TextEncoder()):
        print(json.dumps(row))
    for row in claims(args.rows):
        print(json.dumps(row))


if __name__ == "__main__":
    main()
