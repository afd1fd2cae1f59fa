"""What training never sees, so that the dev suite measures generalisation, not memory.

Two kinds of novelty are held out of the training stream:
- combinations: a few (color, shape) pairs never rendered in training, though each color and each
  shape is seen often with others ("a violet triangle" is new, "purple" and "triangle" are not);
- phrasings: a few synonyms never written in training captions, so that only the text encoder's
  sense of the word ("scarlet" near "red") can carry them.

`in_training(spec, text)` is the filter the world stream applies; `is_novel` is its complement,
which the dev suite requires of every prompt.
"""

from __future__ import annotations

import re

from mutoscope.world.spec import SceneSpec
from mutoscope.world.vocab import Shape

HELD_OUT_PAIRS: frozenset[tuple[str, Shape]] = frozenset(
    {
        ("purple", Shape.TRIANGLE),
        ("orange", Shape.RING),
        ("cyan", Shape.STAR),
        ("pink", Shape.SQUARE),
        ("green", Shape.CIRCLE),
        ("yellow", Shape.PERSON),
    }
)
# One synonym of each of a few colors, shapes and motions; each keeps other synonyms in training.
HELD_OUT_WORDS_BY_KIND: dict[str, frozenset[str]] = {
    "color": frozenset({"scarlet", "azure", "tangerine", "emerald", "violet"}),
    "shape": frozenset({"hoop", "hoops", "orb", "orbs"}),
    "motion": frozenset(
        {"glides", "glide", "gliding", "plummets", "plummet", "plummeting", "twirls", "twirl",
         "twirling", "strolls", "stroll", "strolling", "leaps", "leap", "leaping"}
    ),
}  # fmt: skip
HELD_OUT_WORDS: frozenset[str] = frozenset().union(*HELD_OUT_WORDS_BY_KIND.values())
_WORD = re.compile(r"[a-z]+")


def held_out_pairs(spec: SceneSpec) -> set[tuple[str, Shape]]:
    return {(o.color, o.shape) for o in spec.objects} & HELD_OUT_PAIRS


def held_out_words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower())) & HELD_OUT_WORDS


def novelty(spec: SceneSpec, text: str) -> tuple[str, ...]:
    """What of the prompt training never saw, as tags: "pair" (a held-out color and shape together)
    and "<kind> word" for a held-out color, shape or motion word; () for a familiar prompt."""
    words = held_out_words(text)
    tags = ["pair"] if held_out_pairs(spec) else []
    tags += [f"{kind} word" for kind, held in HELD_OUT_WORDS_BY_KIND.items() if words & held]
    return tuple(tags)


def in_training(spec: SceneSpec, text: str) -> bool:
    """True when neither the scene nor its caption uses anything held out."""
    return not held_out_pairs(spec) and not held_out_words(text)


def is_novel(spec: SceneSpec, text: str) -> bool:
    return not in_training(spec, text)
