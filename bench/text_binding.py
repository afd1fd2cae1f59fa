"""Does a shape word's token state say which color the prompt gives that shape?

    .venv/bin/python bench/text_binding.py [--model DIR] [--t 0.5]

Two-object prompts, "a {c1} {s1} and a {c2} {s2} ...", in four sentence forms. A linear read-out
(logistic regression) of a color from the state of a shape word's token is fit on prompts of some
color-shape pairs and scored on prompts whose first object is a pair it never saw: reading the
object's own color is binding, reading the other object's color is the prompt's bag of words.
Chance is 1/9. The states read: MiniLM's, as the DiT's cross-attention receives them (projected
per token, so nothing more), and with --model, the DiT's tokens after its token refiner
(model/text_refiner.py) at time t.
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

COLORS = ("red", "orange", "yellow", "green", "cyan", "blue", "purple", "pink", "white")
SHAPES = ("circle", "square", "triangle", "star", "ring")
FORMS = ("a {c1} {s1} and a {c2} {s2} move on a gray checkerboard",
         "a {c1} {s1} bounces next to a {c2} {s2} on sandy dunes",
         "there is a {c1} {s1}, and a {c2} {s2} drifts right under a starry night sky",
         "a small {c1} {s1} leaps over a large {c2} {s2}")  # fmt: skip


def prompts(share: float = 0.25, seed: int = 0) -> list[tuple[str, str, str, str, str]]:
    rng = random.Random(seed)
    rows = []
    for form in FORMS:
        for c1, c2 in itertools.permutations(COLORS, 2):
            for s1, s2 in itertools.permutations(SHAPES, 2):
                if rng.random() < share:
                    rows.append((form.format(c1=c1, s1=s1, c2=c2, s2=s2), c1, s1, c2, s2))
    return rows


def main() -> None:
    import numpy as np
    import torch
    from sklearn.linear_model import LogisticRegression

    from mutoscope.text import TextEncoder

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, help="a model directory whose DiT has a token refiner")
    ap.add_argument("--t", type=float, default=0.5, help="the flow time the refiner is asked at")
    args = ap.parse_args()
    torch.set_num_threads(1)

    readers = {"MiniLM": None}
    if args.model is not None:
        from mutoscope.pipeline import load_model

        dit = load_model(args.model).dit.float().eval()
        if dit.refiner is None:
            raise SystemExit(f"{args.model}: its DiT has no token refiner")
        readers["after the refiner"] = dit
    encoder = TextEncoder()
    rows = prompts()
    # A quarter of the color-shape pairs held out: every color with one or two shapes, every shape
    # with one or two colors.
    held = np.array([(COLORS.index(c1) + SHAPES.index(s1)) % 4 == 0 for _, c1, s1, _, _ in rows])
    table = {}
    for name, dit in readers.items():
        first, second, own1, own2 = [], [], [], []
        for text, c1, s1, c2, s2 in rows:
            tokens = encoder.tokenizer.encode(text).tokens
            i1, i2 = tokens.index(s1), len(tokens) - 1 - tokens[::-1].index(s2)
            states, mask = encoder.encode([text])
            if dit is not None:
                with torch.no_grad():
                    _, states = dit.prompt(torch.tensor([args.t]), states, mask)
            first.append(states[0, i1].numpy())
            second.append(states[0, i2].numpy())
            own1.append(COLORS.index(c1))
            own2.append(COLORS.index(c2))
        X1, X2, Y1, Y2 = map(np.array, (first, second, own1, own2))

        def score(X, Y):
            fit = LogisticRegression(max_iter=3000).fit(X[~held], Y[~held])
            return fit.score(X[held], Y[held])

        table[name] = (score(X1, Y1), score(X1, Y2), score(X2, Y2), score(X2, Y1))
    print(f"{len(rows)} prompts, {held.sum()} with a held-out first pair; chance {1 / len(COLORS):.2f}")
    print("| states | 1st shape word: its color | the other's | 2nd shape word: its color | the other's |")
    print("|---|---:|---:|---:|---:|")
    for name, scores in table.items():
        print(f"| {name} | " + " | ".join(f"{s:.1%}" for s in scores) + " |")


if __name__ == "__main__":
    main()
