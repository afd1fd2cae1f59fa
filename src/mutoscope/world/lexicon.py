"""The world's words: every synonym of every canonical name, one table for both directions.

The captioner draws its phrasings from these tables and the prompt grammar reads prompts back with
the index built from the very same tables (`PHRASES`), so a word the captioner can write is a word
the grammar can read. Text is matched lower-case, with hyphens read as spaces ("zig-zags" is
"zig zags") and "n't" read as " not"; a phrase is a tuple of such words, the longest one wins.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from mutoscope.world.vocab import (
    BACKGROUNDS,
    COLORS,
    Camera,
    Direction,
    Motion,
    Relation,
    Shape,
    Spin,
)

COLOR_WORDS: dict[str, tuple[str, ...]] = {
    "red": ("red", "crimson", "scarlet", "ruby", "cherry"),
    "orange": ("orange", "tangerine", "amber"),
    "yellow": ("yellow", "golden", "lemon", "gold", "canary"),
    "green": ("green", "emerald", "jade", "lime"),
    "cyan": ("cyan", "aqua", "turquoise", "teal"),
    "blue": ("blue", "cobalt", "sapphire", "azure", "royal blue"),
    "purple": ("purple", "violet", "amethyst", "plum"),
    "pink": ("pink", "rose", "fuchsia", "hot pink", "bubblegum pink"),
    "white": ("white", "snowy", "ivory", "pearl", "snow white"),
}
COLOR_SUFFIXES = ("colored", "coloured", "hued")  # "a crimson-colored ball" is still a COLOR word

# (singular, plural) per shape.
SHAPE_WORDS: dict[Shape, tuple[tuple[str, str], ...]] = {
    Shape.CIRCLE: (("circle", "circles"), ("ball", "balls"), ("disc", "discs"), ("disk", "disks"),
                   ("dot", "dots"), ("orb", "orbs")),
    Shape.SQUARE: (("square", "squares"), ("box", "boxes"), ("block", "blocks")),
    Shape.TRIANGLE: (("triangle", "triangles"), ("triangular shape", "triangular shapes"),
                     ("three sided shape", "three sided shapes")),
    Shape.STAR: (("star", "stars"), ("five pointed star", "five pointed stars"),
                 ("star shape", "star shapes")),
    Shape.RING: (("ring", "rings"), ("hoop", "hoops"), ("donut", "donuts"),
                 ("doughnut", "doughnuts")),
    Shape.PERSON: (("person", "people"), ("stick figure", "stick figures"),
                   ("stickman", "stickmen"), ("stick man", "stick men"), ("figure", "figures")),
}  # fmt: skip
GENERIC_NOUNS = (("object", "objects"), ("shape", "shapes"), ("thing", "things"))

SIZE_WORDS: dict[str, tuple[str, ...]] = {
    "small": ("small", "little", "tiny", "small sized", "of small size"),
    "medium": ("medium", "medium sized", "mid sized", "average sized", "of medium size"),
    "large": ("large", "big", "huge", "large sized", "of large size"),
}

# (third person singular, plural, gerund or None, implied direction or None) per motion.
MOTION_WORDS: dict[Motion, tuple[tuple[str, str, str | None, Direction | None], ...]] = {
    Motion.STILL: (
        ("stays still", "stay still", "staying still", None),
        ("rests", "rest", "resting", None),
        ("sits still", "sit still", "sitting still", None),
        ("is motionless", "are motionless", None, None),
        ("does not move", "do not move", "not moving", None),
        ("remains still", "remain still", "remaining still", None),
        ("stays in place", "stay in place", "staying in place", None),
        ("holds still", "hold still", "holding still", None),
        ("is still", "are still", None, None),
        ("sits", "sit", "sitting", None),
        ("stops", "stop", "stopping", None),
        ("comes to rest", "come to rest", "coming to rest", None),
    ),
    Motion.MOVE: (
        ("moves", "move", "moving", None),
        ("glides", "glide", "gliding", None),
        ("slides", "slide", "sliding", None),
        ("drifts", "drift", "drifting", None),
        ("travels", "travel", "traveling", None),
        ("shifts", "shift", "shifting", None),
        ("rises", "rise", "rising", Direction.UP),
        ("ascends", "ascend", "ascending", Direction.UP),
        ("floats up", "float up", "floating up", Direction.UP),
        ("sinks", "sink", "sinking", Direction.DOWN),
        ("descends", "descend", "descending", Direction.DOWN),
    ),
    Motion.BOUNCE: (
        ("bounces", "bounce", "bouncing", None),
        ("rebounds", "rebound", "rebounding", None),
        ("bounces up and down", "bounce up and down", "bouncing up and down", None),
        ("bounces off the floor", "bounce off the floor", "bouncing off the floor", None),
        ("keeps bouncing", "keep bouncing", None, None),
    ),
    Motion.FALL: (
        ("falls", "fall", "falling", None),
        ("drops", "drop", "dropping", None),
        ("tumbles down", "tumble down", "tumbling down", None),
        ("plummets", "plummet", "plummeting", None),
        ("falls down", "fall down", "falling down", None),
        ("drops to the floor", "drop to the floor", "dropping to the floor", None),
        ("falls to the ground", "fall to the ground", "falling to the ground", None),
    ),
    Motion.ROTATE: (
        ("rotates", "rotate", "rotating", None),
        ("spins", "spin", "spinning", None),
        ("turns", "turn", "turning", None),
        ("twirls", "twirl", "twirling", None),
        ("spins around", "spin around", "spinning around", None),
        ("rotates in place", "rotate in place", "rotating in place", None),
    ),
    Motion.GROW: (
        ("grows", "grow", "growing", None),
        ("expands", "expand", "expanding", None),
        ("swells", "swell", "swelling", None),
        ("gets bigger", "get bigger", "getting bigger", None),
        ("grows larger", "grow larger", "growing larger", None),
        ("inflates", "inflate", "inflating", None),
    ),
    Motion.SHRINK: (
        ("shrinks", "shrink", "shrinking", None),
        ("contracts", "contract", "contracting", None),
        ("gets smaller", "get smaller", "getting smaller", None),
        ("dwindles", "dwindle", "dwindling", None),
        ("shrinks down", "shrink down", "shrinking down", None),
        ("deflates", "deflate", "deflating", None),
    ),
    Motion.ORBIT: (
        ("orbits", "orbit", "orbiting", None),
        ("circles around", "circle around", "circling around", None),
        ("loops around", "loop around", "looping around", None),
        ("revolves", "revolve", "revolving", None),
        ("goes around in circles", "go around in circles", "going around in circles", None),
        ("moves in a circle", "move in a circle", "moving in a circle", None),
        ("travels in a circle", "travel in a circle", "traveling in a circle", None),
    ),
    Motion.ZIGZAG: (
        ("zigzags", "zigzag", "zigzagging", None),
        ("zig zags", "zig zag", "zig zagging", None),
        ("weaves", "weave", "weaving", None),
        ("snakes", "snake", "snaking", None),
        ("moves in a zigzag", "move in a zigzag", "moving in a zigzag", None),
    ),
    Motion.WALK: (
        ("walks", "walk", "walking", None),
        ("strolls", "stroll", "strolling", None),
        ("marches", "march", "marching", None),
        ("strides", "stride", "striding", None),
        ("paces", "pace", "pacing", None),
    ),
    Motion.WAVE: (
        ("waves", "wave", "waving", None),
        ("waves its arm", "wave their arms", "waving its arm", None),
        ("waves hello", "wave hello", "waving hello", None),
        ("waves a hand", "wave their hands", "waving a hand", None),
    ),
    Motion.JUMP: (
        ("jumps", "jump", "jumping", None),
        ("leaps", "leap", "leaping", None),
        ("hops", "hop", "hopping", None),
        ("jumps up and down", "jump up and down", "jumping up and down", None),
        ("springs into the air", "spring into the air", "springing into the air", None),
    ),
}
# Which qualifiers a motion can carry, in both directions (the spec stores them the same way).
DIRECTIONAL = frozenset({Motion.MOVE, Motion.ZIGZAG, Motion.WALK, Motion.BOUNCE})
SPINNING = frozenset({Motion.ROTATE, Motion.ORBIT})

DIRECTION_WORDS: dict[Direction, tuple[str, ...]] = {
    Direction.LEFT: ("left", "to the left", "leftward", "leftwards", "toward the left", "westward"),
    Direction.RIGHT: ("right", "to the right", "rightward", "rightwards", "toward the right",
                      "eastward"),
    Direction.UP: ("up", "upward", "upwards", "toward the top", "straight up", "skyward"),
    Direction.DOWN: ("down", "downward", "downwards", "toward the bottom", "straight down"),
    Direction.UP_LEFT: ("diagonally up and to the left", "up and to the left", "up and left",
                        "toward the upper left", "to the upper left", "diagonally up left"),
    Direction.UP_RIGHT: ("diagonally up and to the right", "up and to the right", "up and right",
                         "toward the upper right", "to the upper right", "diagonally up right"),
    Direction.DOWN_LEFT: ("diagonally down and to the left", "down and to the left",
                          "down and left", "toward the lower left", "to the lower left",
                          "diagonally down left"),
    Direction.DOWN_RIGHT: ("diagonally down and to the right", "down and to the right",
                           "down and right", "toward the lower right", "to the lower right",
                           "diagonally down right"),
}  # fmt: skip

SPIN_WORDS: dict[Spin, tuple[str, ...]] = {
    Spin.CLOCKWISE: ("clockwise", "in a clockwise direction"),
    Spin.COUNTERCLOCKWISE: ("counterclockwise", "counter clockwise", "anticlockwise",
                            "anti clockwise", "in a counterclockwise direction"),
}  # fmt: skip

# Camera moves: (third person singular, gerund) after "the camera"; nouns stand on their own
# ("a slow pan to the left", "static camera"). Pans and tilts are built from verbs x directions.
_PAN_VERBS = (("pans", "panning"), ("swings", "swinging"), ("sweeps", "sweeping"))
_TILT_VERBS = (("tilts", "tilting"), ("looks", "looking"))
_COMPASS = ("westward", "eastward", "skyward", "straight up", "straight down")


def _pans(verbs, direction: Direction) -> tuple[tuple[str, str], ...]:
    words = [w for w in DIRECTION_WORDS[direction] if w not in _COMPASS]
    return tuple((f"{v} {d}", f"{g} {d}") for v, g in verbs for d in words)


CAMERA_VERBS: dict[Camera, tuple[tuple[str, str], ...]] = {
    Camera.STATIC: (("holds still", "holding still"), ("stays still", "staying still"),
                    ("does not move", "not moving"), ("is static", "staying static"),
                    ("stays fixed", "staying fixed"), ("is locked off", "locked off")),
    Camera.PAN_LEFT: _pans(_PAN_VERBS, Direction.LEFT),
    Camera.PAN_RIGHT: _pans(_PAN_VERBS, Direction.RIGHT),
    Camera.TILT_UP: _pans(_TILT_VERBS, Direction.UP),
    Camera.TILT_DOWN: _pans(_TILT_VERBS, Direction.DOWN),
    Camera.ZOOM_IN: (("zooms in", "zooming in"), ("pushes in", "pushing in"),
                     ("dollies in", "dollying in"), ("closes in", "closing in")),
    Camera.ZOOM_OUT: (("zooms out", "zooming out"), ("pulls back", "pulling back"),
                      ("pulls out", "pulling out"), ("dollies out", "dollying out"),
                      ("widens out", "widening out")),
    Camera.ORBIT: (("orbits the scene", "orbiting the scene"),
                   ("circles around the scene", "circling around the scene"),
                   ("revolves around the scene", "revolving around the scene"),
                   ("arcs around the scene", "arcing around the scene"),
                   ("orbits", "orbiting")),
}  # fmt: skip
CAMERA_NOUNS: dict[Camera, tuple[str, ...]] = {
    Camera.STATIC: ("static camera", "fixed camera", "locked off shot", "static shot",
                    "tripod shot", "stationary camera"),
    Camera.PAN_LEFT: ("pan to the left", "pan left", "leftward pan", "sweep to the left"),
    Camera.PAN_RIGHT: ("pan to the right", "pan right", "rightward pan", "sweep to the right"),
    Camera.TILT_UP: ("tilt up", "upward tilt", "tilt upward"),
    Camera.TILT_DOWN: ("tilt down", "downward tilt", "tilt downward"),
    Camera.ZOOM_IN: ("zoom in", "push in", "dolly in"),
    Camera.ZOOM_OUT: ("zoom out", "pull back", "dolly out"),
    Camera.ORBIT: ("orbiting camera", "camera orbit", "orbit around the scene"),
}  # fmt: skip
CAMERA_SUBJECTS = ("camera",)
# Adjectives that make a static claim only when the camera is the subject ("the camera is fixed").
CAMERA_STATIC_ADJECTIVES = ("static", "fixed", "stationary", "locked off")

RELATION_WORDS: dict[Relation, tuple[str, ...]] = {
    Relation.LEFT_OF: ("to the left of", "left of", "on the left side of", "on the left of"),
    Relation.RIGHT_OF: ("to the right of", "right of", "on the right side of", "on the right of"),
    Relation.ABOVE: ("above", "over", "higher than", "up above"),
    Relation.BELOW: ("below", "under", "beneath", "underneath", "lower than"),
    Relation.NEXT_TO: ("next to", "beside", "alongside", "right next to", "by the side of"),
}

NUMBER_WORDS: dict[int, tuple[str, ...]] = {
    1: ("one", "a single", "1", "only one", "just one"),
    2: ("two", "a pair of", "2", "a couple of"),
    3: ("three", "a trio of", "3"),
}

BACKGROUND_WORDS: dict[str, tuple[str, ...]] = {
    "checkerboard": ("checkerboard", "gray checkerboard", "grey checkerboard", "checkered floor",
                     "chessboard", "gray chessboard", "checkerboard floor"),
    "dunes": ("sandy dunes", "sand dunes", "dunes", "desert", "sandy desert", "desert dunes"),
    "night": ("night sky", "starry night", "starry sky", "dark sky with stars",
              "night sky with stars", "starry night sky", "dim night sky"),
    "grass": ("grass", "meadow", "lawn", "field of grass", "grassy field", "pale grass"),
    "brick": ("brick wall", "bricks", "wall of bricks", "brickwork", "old brick wall"),
    "clouds": ("cloudy sky", "clouds", "overcast sky", "sky full of clouds", "cloudscape"),
}  # fmt: skip

# Order words. THEN: the next event follows the last one. BEFORE/AFTER: "A before B", "A after B",
# and at the head of a sentence "After A, B" / "Before B, A".
THEN_WORDS = ("then", "and then", "after that", "afterwards", "afterward", "next", "later",
              "and later", "subsequently", "and after that", "finally")  # fmt: skip
# No "right before": "slides right before it bounces" must read as a direction.
BEFORE_WORDS = ("before", "just before")
AFTER_WORDS = ("after", "just after", "once")
CONJUNCTIONS = ("and", "while", "as", "whereas", "meanwhile", "at the same time")
# Words that say "the subject is ..." and let a following color, size or shape describe it.
PREDICATE_WORDS = ("is", "are", "that is", "which is", "that are", "which are", "colored",
                   "coloured", "painted", "in", "shaped like")  # fmt: skip
DETERMINERS = ("a", "an", "the", "some")
# Multi-word fillers that would otherwise be misread ("there is" is no predicate, "after a moment"
# orders nothing, "one by one" counts nothing).
FILLERS = ("there is", "there are", "after a moment", "after a pause", "after a while",
           "in front of", "in the background", "one by one", "each other", "one another",
           "one of them", "the other one", "another one", "both of them", "each of them",
           "it", "they", "them", "its", "the other", "another", "both", "each")  # fmt: skip


class Kind(StrEnum):
    COLOR = "color"
    SIZE = "size"
    SHAPE = "shape"
    GENERIC = "generic"  # object, shape, thing: a noun that names no shape
    NUMBER = "number"
    DET = "det"
    MOTION = "motion"
    DIRECTION = "direction"
    SPIN = "spin"
    CAMERA = "camera"  # a camera move, whoever the subject is
    CAMERA_SUBJECT = "camera_subject"
    CAMERA_STATIC = "camera_static"
    RELATION = "relation"
    BACKGROUND = "background"
    THEN = "then"
    BEFORE = "before"
    AFTER = "after"
    CONJ = "conj"
    PREDICATE = "predicate"
    FILLER = "filler"
    COMMA = "comma"
    STOP = "stop"  # end of a sentence


@dataclass(frozen=True)
class Word:
    """A lexicon entry: kind, canonical value, `extra` (a noun's plural, a verb's direction)."""

    kind: Kind
    value: object = None
    extra: object = None


def _build_phrases() -> dict[tuple[str, ...], Word]:
    table: dict[tuple[str, ...], Word] = {}

    def add(phrase: str, word: Word) -> None:
        key = tuple(phrase.split())
        if key in table and table[key] != word:
            raise ValueError(f"lexicon: {phrase!r} is both {table[key]} and {word}")
        table[key] = word

    for color, words in COLOR_WORDS.items():
        for w in words:
            add(w, Word(Kind.COLOR, color))
            for suffix in COLOR_SUFFIXES:
                add(f"{w} {suffix}", Word(Kind.COLOR, color))
    for shape, pairs in SHAPE_WORDS.items():
        for one, many in pairs:
            add(one, Word(Kind.SHAPE, shape, False))
            add(many, Word(Kind.SHAPE, shape, True))
    for one, many in GENERIC_NOUNS:
        add(one, Word(Kind.GENERIC, None, False))
        add(many, Word(Kind.GENERIC, None, True))
    for size, words in SIZE_WORDS.items():
        for w in words:
            add(w, Word(Kind.SIZE, size))
    for motion, forms in MOTION_WORDS.items():
        for *verbs, implied in forms:
            for v in verbs:
                if v:
                    add(v, Word(Kind.MOTION, motion, implied))
    for direction, words in DIRECTION_WORDS.items():
        for w in words:
            add(w, Word(Kind.DIRECTION, direction))
    for spin, words in SPIN_WORDS.items():
        for w in words:
            add(w, Word(Kind.SPIN, spin))
    for camera, forms in CAMERA_VERBS.items():
        if camera is Camera.STATIC:
            continue  # "the camera holds still / is static": read through CAMERA_SUBJECT
        for phrase in (p for form in forms for p in form):
            if table.get(tuple(phrase.split()), Word(Kind.FILLER)).kind is not Kind.MOTION:
                add(phrase, Word(Kind.CAMERA, camera))  # "orbits" is read through the subject
    for camera, nouns in CAMERA_NOUNS.items():
        for w in nouns:
            add(w, Word(Kind.CAMERA, camera))
    for w in CAMERA_SUBJECTS:
        add(w, Word(Kind.CAMERA_SUBJECT))
    for w in CAMERA_STATIC_ADJECTIVES:
        add(w, Word(Kind.CAMERA_STATIC, Camera.STATIC))
    for relation, words in RELATION_WORDS.items():
        for w in words:
            add(w, Word(Kind.RELATION, relation))
    for n, words in NUMBER_WORDS.items():
        for w in words:
            add(w, Word(Kind.NUMBER, n))
    for background, words in BACKGROUND_WORDS.items():
        for w in words:
            add(w, Word(Kind.BACKGROUND, background))
    for kind, words in ((Kind.THEN, THEN_WORDS), (Kind.BEFORE, BEFORE_WORDS),
                        (Kind.AFTER, AFTER_WORDS), (Kind.CONJ, CONJUNCTIONS),
                        (Kind.PREDICATE, PREDICATE_WORDS), (Kind.DET, DETERMINERS),
                        (Kind.FILLER, FILLERS)):  # fmt: skip
        for w in words:
            add(w, Word(kind))
    add(",", Word(Kind.COMMA))
    for p in ".;:!?":
        add(p, Word(Kind.STOP))
    return table


PHRASES: dict[tuple[str, ...], Word] = _build_phrases()
MAX_PHRASE_WORDS = max(len(k) for k in PHRASES)

# Sanity of the contract: every canonical name has its words.
assert set(COLOR_WORDS) == set(COLORS) and set(BACKGROUND_WORDS) == set(BACKGROUNDS)
assert set(SHAPE_WORDS) == set(Shape) and set(MOTION_WORDS) == set(Motion)
assert set(CAMERA_VERBS) == set(Camera) and set(RELATION_WORDS) == set(Relation)
