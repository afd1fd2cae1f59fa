"""Color names grounded in RGB: four features per token beside the text encoder's states.

Why: the frozen MiniLM does not place color synonyms near each other. Fit a linear read-out of its
token states on the color words of the training captions and it names emerald, azure and tangerine
0 times in 7 contexts each (bench/text_colors.py); the nearest training word of "scarlet" is
"pearl", of "emerald" "amber". The shipped DiT drew the right color for 4 of 83 dev-suite objects
named only by such a word, against 51 of 83 for the ground truth through its VAE. A person knows
what "scarlet" looks like; so does this table: the 949 names of the xkcd color survey and the 148
of CSS (matplotlib's tables, none chosen by us), each token of a name gets [1, r, g, b] (r, g, b in
[-1, 1]), every other token zeros. The DiT learns from the training words what the world's colors
look like in RGB, and reads any other name through it.

Training hides some color words from the encoder (`hide_colors`: "[[crimson]]" is encoded as
[MASK], its RGB kept), so that the model cannot lean on the encoder's sense of the word alone.
"""

from __future__ import annotations

import re
from functools import cache

import numpy as np
import torch

FEATURES = 4  # [is a color name, r, g, b]
_HIDDEN = re.compile(r"\[\[([^\[\]]+)\]\]")
HIDDEN_TOKEN = "[MASK]"


@cache
def color_table() -> dict[str, tuple[float, float, float]]:
    """Lower-case color name -> RGB in [0, 1]: xkcd's survey, then CSS's names it lacks."""
    from matplotlib import colors

    table = {name.removeprefix("xkcd:"): colors.to_rgb(hex_) for name, hex_ in colors.XKCD_COLORS.items()}
    for name, hex_ in colors.CSS4_COLORS.items():
        table.setdefault(name, colors.to_rgb(hex_))
    return table


@cache
def _name_pattern() -> re.Pattern:
    # Longest names first, so that "royal blue" wins over "royal" and "blue".
    names = sorted(color_table(), key=len, reverse=True)
    return re.compile(r"\b(" + "|".join(re.escape(n) for n in names) + r")\b")


def color_spans(text: str) -> tuple[str, list[tuple[int, int, tuple[float, float, float]]]]:
    """(what the encoder reads, [(start, end, rgb)] of the color names in it). A hidden name
    "[[crimson]]" becomes [MASK] in the encoder's text, its span that of [MASK]."""
    spans, out, at, length = [], [], 0, 0  # `length`: of the encoder's text so far
    table = color_table()
    for m in _HIDDEN.finditer(text):
        rgb = table.get(m.group(1).lower())
        shown = HIDDEN_TOKEN if rgb is not None else m.group(1)
        start = length + m.start() - at
        if rgb is not None:
            spans.append((start, start + len(shown), rgb))
        out += [text[at : m.start()], shown]
        length, at = start + len(shown), m.end()
    out.append(text[at:])
    shown = "".join(out)
    lower = shown.lower()
    for m in _name_pattern().finditer(lower):
        if not any(s <= m.start() < e for s, e, _ in spans):
            spans.append((m.start(), m.end(), table[m.group(1)]))
    return shown, sorted(spans)


def token_features(offsets: list[tuple[int, int]], spans) -> torch.Tensor:
    """(L, FEATURES) for tokens with these character offsets: a token inside a color name's span
    gets [1, r, g, b]; special tokens ((0, 0)) and every other token zeros."""
    out = torch.zeros(len(offsets), FEATURES)
    for i, (a, b) in enumerate(offsets):
        if b <= a:
            continue
        for s, e, rgb in spans:
            if s <= a and b <= e:
                out[i] = torch.tensor([1.0, *(2 * np.asarray(rgb) - 1)])
                break
    return out


def hide_colors(text: str, rng: np.random.Generator, p: float) -> str:
    """Each color name of `text` hidden from the encoder ("[[name]]") with probability p."""
    if p <= 0:
        return text
    pieces, at = [], 0
    for m in _name_pattern().finditer(text.lower()):
        if rng.random() < p:
            pieces += [text[at : m.start()], "[[", text[m.start() : m.end()], "]]"]
            at = m.end()
    return "".join(pieces) + text[at:]
