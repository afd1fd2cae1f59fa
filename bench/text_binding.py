"""Does a shape word's token state say which color the prompt gives that shape?

    .venv/bin/python bench/text_binding.py [--model DIR] [--t 0.5]

Two-object prompts, "a {c1} {s1} and a {c2} {s2} ...", in four sentence forms. A linear read-out
(logistic regression) of a color from the state of a shape word's token is fit on some prompts and
scored on the others (two splits, below): reading the object's own color is binding, reading the other
object's color is the prompt's bag of words. Chance is 1/9. The states read: MiniLM's, and with
--model, the DiT's tokens projected to its width (per token: what cross-attention reads without a
refiner) and after its token refiner (model/text_refiner.py) at time t.
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

    # Each reader maps MiniLM's states (1, L, 384) and mask to the token states it reads out.
    readers = {"MiniLM": lambda states, mask: states}
    if args.model is not None:
        from mutoscope.pipeline import load_model

        dit = load_model(args.model).dit.float().eval()
        if dit.refiner is None:
            raise SystemExit(f"{args.model}: its DiT has no token refiner")
        readers["projected"] = lambda states, mask: dit.text_proj(states)
        t = torch.tensor([args.t])
        readers["after the refiner"] = lambda states, mask: dit.prompt(t, states, mask)[1]
    encoder = TextEncoder()
    rows = prompts()
    # Two splits. Held-out color-shape pairs: a read-out must find the color in a form shared by all
    # shapes (one that finds none falls below chance: the colors seen with a shape in training are
    # those it is not given in the test). A random quarter: the pairs are seen, so a state that only
    # names its pair is read too.
    splits = {
        "held-out pairs": np.array(
            [(COLORS.index(c1) + SHAPES.index(s1)) % 4 == 0 for _, c1, s1, _, _ in rows]
        ),
        "random": np.random.default_rng(0).random(len(rows)) < 0.25,
    }
    first = {name: [] for name in readers}  # each reader's states of the 1st shape word, and the 2nd's
    second = {name: [] for name in readers}
    for text, _, s1, _, s2 in rows:  # each prompt encoded once, read by every reader
        tokens = encoder.tokenizer.encode(text).tokens
        i1, i2 = tokens.index(s1), len(tokens) - 1 - tokens[::-1].index(s2)
        states, mask = encoder.encode([text])
        with torch.no_grad():
            for name, read in readers.items():
                out = read(states, mask)
                first[name].append(out[0, i1].numpy())
                second[name].append(out[0, i2].numpy())
    Y1 = np.array([COLORS.index(c1) for _, c1, _, _, _ in rows])
    Y2 = np.array([COLORS.index(c2) for _, _, _, c2, _ in rows])
    table = {}
    for name in readers:
        X1, X2 = np.array(first[name]), np.array(second[name])
        for split, held in splits.items():

            def score(X, Y, held=held):
                fit = LogisticRegression(max_iter=3000).fit(X[~held], Y[~held])
                return fit.score(X[held], Y[held])

            table[name, split] = (score(X1, Y1), score(X1, Y2), score(X2, Y2), score(X2, Y1))
    print(f"{len(rows)} prompts; chance {1 / len(COLORS):.2f}")
    print("| states | split | 1st shape word: its color | the other's | 2nd: its color | the other's |")
    print("|---|---|---:|---:|---:|---:|")
    for (name, split), scores in table.items():
        print(f"| {name} | {split} | " + " | ".join(f"{s:.1%}" for s in scores) + " |")


if __name__ == "__main__":
    main()
