"""The captioner: many phrasings of one scene, each with the typed claims that its text makes.

`caption(spec)` writes a caption from the lexicon's synonyms in one of two layouts (the objects
first, then what they do; or each object introduced by its action), with the camera and the
background first, last, in a sentence of their own or left out, and returns the claims that the
text states and no more: what `grammar.parse_prompt` reads back from it. Every claim holds of the
spec (`claims.holds`): relations are stated only with a margin, orders only where the times agree.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field, replace

from mutoscope.world.claims import Claim, ClaimType, Event, ObjectRef, holds, relation_holds
from mutoscope.world.grammar import ref_claims
from mutoscope.world.lexicon import (
    BACKGROUND_WORDS,
    CAMERA_NOUNS,
    CAMERA_VERBS,
    COLOR_WORDS,
    DIRECTION_WORDS,
    DIRECTIONAL,
    GENERIC_NOUNS,
    MOTION_WORDS,
    NUMBER_WORDS,
    RELATION_WORDS,
    SHAPE_WORDS,
    SIZE_WORDS,
    SPIN_WORDS,
    SPINNING,
)
from mutoscope.world.spec import ObjectSpec, SceneSpec, Segment
from mutoscope.world.vocab import Camera, Motion, Relation, Shape

RELATION_MARGIN = 0.03  # world units: a stated relation survives this much jitter of either object
ADVERBS = ("slowly", "quickly", "gently", "smoothly", "steadily")  # words the grammar skips
ADJECTIVES = ("slow", "smooth", "gentle", "gradual")  # for camera nouns: "a slow pan left"
OPENERS = ("", "", "", "There is ", "A scene with ", "A clip of ", "We see ", "A video of ")
MASS_NOUNS = {"grass", "pale grass", "brickwork", "bricks", "clouds", "dunes", "sandy dunes",
              "sand dunes", "desert dunes"}  # fmt: skip
PREDICATES = ("that is", "colored", "painted", "in")  # "a ball that is crimson"
LOCATIVES = ("is", "is", "is placed", "stands", "can be seen")  # "a ball stands left of a box"
# Prepositions before a background; "over" and "under" are relation words, which a background
# after them silences in the grammar.
BG_PREPOSITIONS = {
    "checkerboard": ("on", "on", "over", "across"),
    "dunes": ("on", "across", "among", "over"),
    "grass": ("on", "in", "across", "over"),
    "night": ("against", "under", "in front of"),
    "brick": ("against", "in front of", "by"),
    "clouds": ("against", "under", "in front of"),
}
# Between two verbs of one subject: (joiner, makes an ORDER claim); "{it}" is the subject's
# pronoun. Gerund chains ("sliding right, then bouncing") use those without a pronoun.
CHAIN_JOINERS = (
    (", then ", True),
    (" and then ", True),
    (", and then ", True),
    (" then ", True),
    (", and later ", True),
    (". Then {it} ", True),
    (". After that, {it} ", True),
    ("; afterwards {it} ", True),
    (" before {it} ", True),
    (" and ", False),
)
# Between the clauses of two subjects.
ORDER_JOINERS = (", then ", ". Then ", ". After that, ", "; afterwards ", " and then ", ", later ")
PLAIN_JOINERS = (", while ", " and ", ", and ", ". ", ". ", ". ", "; ", " as ")
HYPHENATED = ("locked off", "medium sized", "mid sized", "average sized", "small sized",
              "large sized", "five pointed", "three sided", "counter clockwise", "anti clockwise",
              "zig zag", "snow white")  # fmt: skip


@dataclass(frozen=True)
class Caption:
    text: str
    claims: tuple[Claim, ...]


def coverage(claims) -> dict[str, int]:
    """How many claims of each type a Caption (or a list of claims, e.g. a parsed prompt) makes:
    what it lets the judge test."""
    counts = Counter(str(c.type) for c in getattr(claims, "claims", claims))
    return {str(t): counts.get(str(t), 0) for t in ClaimType}


class _Pick:
    """Choices from any generator with `.random()` (random.Random or numpy's Generator)."""

    def __init__(self, rng):
        self.rng = rng

    def p(self, prob: float) -> bool:
        return float(self.rng.random()) < prob

    def one(self, seq):
        seq = tuple(seq)
        return seq[min(int(float(self.rng.random()) * len(seq)), len(seq) - 1)]


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


@dataclass
class _Unit:
    """A subject that does something: an object, a group that does the same, one of a group."""

    objs: tuple[ObjectSpec, ...]
    steps: list[Segment]  # the segments stated, in order (of the first object)
    plural: bool = False
    one_of: str | None = None  # "one of them", "the other one": one member of a group
    events: list[Event] = field(default_factory=list)  # the events written, in order

    @property
    def shape(self) -> Shape:
        return self.objs[0].shape


class _Writer:
    """Writes phrases and records, phrase by phrase, the claims the grammar reads from them."""

    def __init__(self, spec: SceneSpec, pick: _Pick):
        self.spec, self.pick = spec, pick
        self.claims: list[Claim] = []
        self.group_ref: ObjectRef | None = None  # what "one of them" refers to

    def say(self, claims) -> None:
        self.claims.extend(claims)

    # ---- noun phrases ------------------------------------------------------------------------
    def shape_word(self, shape: Shape, plural: bool) -> str:
        return self.pick.one(SHAPE_WORDS[shape])[1 if plural else 0]

    def color_word(self, color: str) -> str:
        word = self.pick.one(COLOR_WORDS[color])
        return f"{word}-{self.pick.one(('colored', 'hued'))}" if self.pick.p(0.08) else word

    def noun_phrase(self, ref: ObjectRef, det: str | None, plural=False, count=None) -> str:
        """Text naming `ref`: det "the" or "a", or a number word when `count` is given."""
        size = self.pick.one(SIZE_WORDS[ref.size]) if ref.size else ""
        after = size if size.startswith("of ") else ""  # "a ball of small size"
        if ref.shape:
            head = self.shape_word(ref.shape, plural)
        else:
            head = self.pick.one(GENERIC_NOUNS)[1 if plural else 0]
        words = [size] if size and not after else []
        words += [self.color_word(ref.color)] if ref.color else []
        words += [head, after] if after else [head]
        if count is not None:
            words.insert(0, self.pick.one(w for w in NUMBER_WORDS[count] if not w.isdigit()))
        elif det == "a":
            words.insert(0, _article(words[0]))
        elif det:
            words.insert(0, det)
        return " ".join(words)

    def introduce(self, objs, count: bool = False, simple: bool = False) -> tuple[str, ObjectRef]:
        """An indefinite phrase introducing objects of one shape and color, and its ref."""
        shape, color, n = objs[0].shape, objs[0].color, len(objs)
        sizes = {o.size for o in objs}
        size = sizes.pop() if len(sizes) == 1 and self.pick.p(0.35) else None
        ref = ObjectRef(shape=shape, color=color, size=size)
        if n > 1 or count:  # "two blue squares", "a single red ball"
            self.say(ref_claims(ref, n))
            return self.noun_phrase(ref, None, plural=n > 1, count=n), ref
        if not simple and size and self.pick.p(0.08):  # "a ball that is small and crimson"
            bare = ObjectRef(shape=shape)
            self.say(ref_claims(replace(bare, size=size)) + ref_claims(ref))
            words = self.pick.one(SIZE_WORDS[size]), self.pick.one(COLOR_WORDS[color])
            return f"{self.noun_phrase(bare, 'a')} that is {words[0]} and {words[1]}", ref
        if not simple and self.pick.p(0.15):  # "a small ball that is crimson"
            first = replace(ref, color=None)
            self.say(ref_claims(first) + ref_claims(ref))
            text = f"{self.noun_phrase(first, 'a')} {self.pick.one(PREDICATES)}"
            return f"{text} {self.pick.one(COLOR_WORDS[color])}", ref
        self.say(ref_claims(ref))
        if shape is not Shape.PERSON and size is None and self.pick.p(0.07):
            color_word = self.color_word(color)  # "a red star-shaped object"
            return f"{_article(color_word)} {color_word} {shape}-shaped object", ref
        return self.noun_phrase(ref, "a"), ref

    def refer(self, obj: ObjectSpec) -> tuple[str, ObjectRef]:
        """A definite phrase that picks out `obj` alone in the scene, and its ref."""
        options = [ObjectRef(shape=obj.shape, color=obj.color)] * 4 + [
            ObjectRef(shape=obj.shape),
            ObjectRef(shape=obj.shape),
            ObjectRef(color=obj.color),
            ObjectRef(shape=obj.shape, color=obj.color, size=obj.size),
            ObjectRef(shape=obj.shape, size=obj.size),
        ]
        unique = [r for r in options if sum(r.matches(o) for o in self.spec.objects) == 1]
        ref = self.pick.one(unique)
        self.say(ref_claims(ref))
        return self.noun_phrase(ref, "the"), ref

    def describe(self, head: str, ref: ObjectRef, obj: ObjectSpec) -> tuple[str, ObjectRef]:
        """Sometimes a predicate: 'the ball is crimson and', 'the red shape is a star and'."""
        if not self.pick.p(0.2):
            return head, ref
        if ref.color is None:
            word, new = self.color_word(obj.color), replace(ref, color=obj.color)
        elif ref.shape is None:
            noun = self.shape_word(obj.shape, False)
            word, new = f"{_article(noun)} {noun}", replace(ref, shape=obj.shape)
        elif ref.size is None:
            word, new = self.pick.one(SIZE_WORDS[obj.size]), replace(ref, size=obj.size)
        else:
            return head, ref
        self.say(ref_claims(new))
        return f"{head} is {word} and", new

    # ---- verbs -------------------------------------------------------------------------------
    def verb(
        self, seg: Segment, shape: Shape, plural: bool, gerund: bool, first: bool = True
    ) -> tuple[str, Event]:
        """A verb phrase for one segment, and the event it states (the subject is set later)."""
        directional = seg.direction is not None and seg.motion in DIRECTIONAL
        # A move always says where it goes; the others mostly do.
        says_direction = directional and (seg.motion is Motion.MOVE or self.pick.p(0.8))
        forms = [
            f
            for f in MOTION_WORDS[seg.motion]
            if (f[2] or not gerund)
            and (f[3] is None or f[3] == seg.direction)
            and not (says_direction and "up and down" in f[0])  # "bounces up and down left"
            and not (shape is Shape.PERSON and f[0].startswith("sits"))
            and not (first and f[0] in ("stops", "comes to rest"))  # only after a motion
        ]
        third, many, ing, implied = self.pick.one(forms)
        words = [ing if gerund else many if plural else third]
        direction, spin = implied, None
        if direction is None and says_direction:
            direction = seg.direction
            words.append(self.pick.one(DIRECTION_WORDS[direction]))
        if seg.spin and seg.motion in SPINNING and self.pick.p(0.8):
            spin = seg.spin
            words.append(self.pick.one(SPIN_WORDS[spin]))
        if seg.motion is not Motion.STILL and self.pick.p(0.12):
            words.insert(0, self.pick.one(ADVERBS))
        return " ".join(words), Event(ObjectRef(), seg.motion, direction=direction, spin=spin)

    def chain(self, unit: _Unit, ref: ObjectRef, gerund: bool) -> str:
        """'slides right, then bounces': the unit's steps, an ORDER claim for each 'then'."""
        joiners = CHAIN_JOINERS[:5] + CHAIN_JOINERS[-1:] if gerund else CHAIN_JOINERS
        text = "first " if len(unit.steps) > 1 and not gerund and self.pick.p(0.15) else ""
        for i, seg in enumerate(unit.steps):
            ordered = True
            if i:
                joiner, ordered = self.pick.one([j for j in joiners if j[1]] if self.pick.p(0.9) else joiners)
                text += joiner.format(it="they" if unit.plural else "it")
            phrase, event = self.verb(seg, unit.shape, unit.plural, gerund, first=not i)
            event = replace(event, subject=ref)
            self.say([Claim(ClaimType.MOTION, event=event)])
            if i and ordered:
                self.say([Claim(ClaimType.ORDER, event=unit.events[-1], then=event)])
            unit.events.append(event)
            text += phrase
        return text

    def clause(self, unit: _Unit, intro: bool, count: bool = False, gerund: bool = False) -> str:
        """A subject and what it does: 'a red ball drops, then bounces'."""
        if unit.one_of:
            head, ref = unit.one_of, self.group_ref
        elif intro:
            head, ref = self.introduce(unit.objs, count)
        elif unit.plural:
            ref = ObjectRef(shape=unit.shape, color=unit.objs[0].color)
            head = self.noun_phrase(ref, "the", plural=True)
            self.say(ref_claims(ref))
        else:
            head, ref = self.describe(*self.refer(unit.objs[0]), unit.objs[0])
        if not gerund and self.pick.p(0.1):  # "the red ball is sliding right"
            return f"{head} {'are' if unit.plural else 'is'} {self.chain(unit, ref, True)}"
        return f"{head} {self.chain(unit, ref, gerund)}"

    def relation(self, a: ObjectSpec, rel: Relation, b: ObjectSpec, intro: bool, verb=True) -> str:
        """'a red circle rests to the left of a blue star' (`intro`: both are new; `verb`: a
        sentence of its own rather than an item of a list)."""
        head, ref = self.introduce((a,), simple=True) if intro else self.refer(a)
        verb = self.pick.one(LOCATIVES) if verb else ""
        if verb and self.pick.p(0.4):  # "rests", "sits still": a still object says so
            verb, event = self.verb(Segment(Motion.STILL, 0.0, 1.0), a.shape, False, False)
            self.say([Claim(ClaimType.MOTION, event=replace(event, subject=ref))])
        other_text, other = self.introduce((b,), simple=True) if intro else self.refer(b)
        self.say([Claim(ClaimType.RELATION, subject=ref, value=str(rel), other=other)])
        words = (head, verb, self.pick.one(RELATION_WORDS[rel]), other_text)
        return " ".join(w for w in words if w)

    # ---- camera and background ---------------------------------------------------------------
    def camera(self, where: str) -> str:
        cam = self.spec.camera
        self.say([Claim(ClaimType.CAMERA, value=str(cam))])
        third, ing = self.pick.one(CAMERA_VERBS[cam])
        noun = self.pick.one(CAMERA_NOUNS[cam])
        moves = cam is not Camera.STATIC
        adv = f"{self.pick.one(ADVERBS)} " if moves and self.pick.p(0.3) else ""
        adj = f"{self.pick.one(ADJECTIVES)} " if moves and self.pick.p(0.4) else ""
        the = self.pick.one(("the camera", "the camera", "camera"))
        if where == "lead":
            return self.pick.one(
                (f"As {the} {adv}{third}, ", f"While {the} {adv}{third}, ", f"With {the} {ing}, ")
            )
        if where == "tail":
            return self.pick.one(
                (f", as {the} {adv}{third}", f" while {the} {adv}{third}", f", with {the} {ing}")
            )
        shot = noun.endswith("shot")
        return self.pick.one(
            (
                f"{the} {adv}{third}.",
                f"{the} {adv}{third}.",
                f"Camera: {ing if 'camera' in noun or self.pick.p(0.5) else noun}.",
                f"{noun}." if shot else f"Shot with {_article(adj + noun)} {adj}{noun}.",
                f"{_article(adj + noun)} {adj}{noun}.",
            )
        )

    def background(self, where: str) -> str:
        bg = self.spec.background
        self.say([Claim(ClaimType.BACKGROUND, value=bg)])
        word = self.pick.one(BACKGROUND_WORDS[bg])
        phrase = word if word in MASS_NOUNS else f"{self.pick.one(('the', _article(word)))} {word}"
        prep = self.pick.one(BG_PREPOSITIONS[bg])
        if where == "lead":
            return f"{prep} {phrase}, "
        if where == "tail":
            return self.pick.one(
                (f" {prep} {phrase}", f" {prep} {phrase}", f", with {phrase} in the background")
            )
        return self.pick.one(
            (
                f"The background is {phrase}.",
                f"Background: {word}.",
                f"The setting is {phrase}.",
                f"It all happens {prep} {phrase}.",
                f"{phrase} in the background.",
            )
        )


# ---- what to say -----------------------------------------------------------------------------
def _groups(spec: SceneSpec) -> list[tuple[ObjectSpec, ...]]:
    """Objects grouped by shape and color, in order of first appearance."""
    groups: dict[tuple, list[ObjectSpec]] = {}
    for o in spec.objects:
        groups.setdefault((o.shape, o.color), []).append(o)
    return [tuple(g) for g in groups.values()]


def _is_still(obj: ObjectSpec) -> bool:
    return all(s.motion is Motion.STILL for s in obj.segments)


def _steps(obj: ObjectSpec, spec: SceneSpec, pick: _Pick) -> list[Segment]:
    """The segments a caption states: every motion; the still spells only sometimes."""
    segs = list(obj.segments) or [Segment(Motion.STILL, 0.0, spec.seconds)]
    if _is_still(obj):
        return segs[:1] if pick.p(0.75) else []
    # A still spell first is seldom said ("rests, then slides right"): without it, the motion can
    # follow another object's in a 'then' ("the ball falls, then the star spins").
    said = [s.motion is not Motion.STILL or pick.p(0.3 if i else 0.1) for i, s in enumerate(segs)]
    return [s for s, say in zip(segs, said, strict=True) if say]


def _units(group: tuple[ObjectSpec, ...], spec: SceneSpec, pick: _Pick) -> list[_Unit]:
    if len(group) == 1:
        return [_Unit(group, _steps(group[0], spec, pick))]
    plans = {tuple((s.motion, s.direction, s.spin) for s in o.segments) for o in group}
    if len(plans) == 1:  # the group does one thing: "two blue squares bounce"
        return [_Unit(group, _steps(group[0], spec, pick), plural=True)]
    # Members that differ: "one of them slides left; the other one stays still" (each says so).
    names = ["one of them", *["another one"] * (len(group) - 2), "the other one"]
    still = [Segment(Motion.STILL, 0.0, spec.seconds)]
    members = zip(group, names, strict=True)
    return [_Unit((o,), _steps(o, spec, pick) or still, one_of=n) for o, n in members]


def _chronological(blocks: list[list[_Unit]]) -> list[list[_Unit]]:
    """Tell what happens in the order it happens (a group's members stay together): next comes
    what starts once the last told has ended, if anything does, else what starts first."""

    def span(block):
        moving = [s for u in block for s in u.steps if s.motion is not Motion.STILL]
        inf = float("inf")
        return (min(s.t0 for s in moving), max(s.t1 for s in moving)) if moving else (inf, inf)

    left, out, end = sorted(blocks, key=lambda b: span(b)[0]), [], float("-inf")
    while left:
        block = next((b for b in left if span(b)[0] >= end - 1e-6), left[0])
        left.remove(block)
        out.append(block)
        end = span(block)[1]
    return out


def _relation_safe(a: ObjectSpec, b: ObjectSpec, rel: Relation) -> bool:
    m = RELATION_MARGIN
    return all(
        relation_holds((a.x + dx, a.y + dy), (b.x, b.y), a.radius, b.radius, rel)
        for dx, dy in ((0, 0), (m, 0), (-m, 0), (0, m), (0, -m))
    )


def _relations(spec: SceneSpec, pick: _Pick) -> list[tuple[ObjectSpec, Relation, ObjectSpec]]:
    """Up to two relations between still objects that are unique by shape and color."""
    keys = Counter((o.shape, o.color) for o in spec.objects)
    still = [o for o in spec.objects if _is_still(o) and keys[(o.shape, o.color)] == 1]
    found = [(a, r, b) for a in still for b in still if a is not b for r in Relation]
    found = [(a, r, b) for a, r, b in found if _relation_safe(a, b, r)]
    wanted = 1.0 if spec.extras.get("kind") == "relation" else 0.5
    out: list = []
    while len(out) < 2 and pick.p(wanted):
        used = {id(o) for a, _, b in out for o in (a, b)}
        fresh = [f for f in found if id(f[0]) not in used and id(f[2]) not in used]
        if not fresh:
            break
        out.append(pick.one(fresh))
        wanted *= 0.4
    return out


def _order_joiner(w: _Writer, prev: _Unit | None, unit: _Unit) -> str | None:
    """A 'then' between two subjects' clauses, when the first's last event ends before the next
    one's first begins; it records the ORDER claim."""
    if prev is None or not prev.events or not unit.events or not w.pick.p(0.85):
        return None
    claim = Claim(ClaimType.ORDER, event=prev.events[-1], then=unit.events[0])
    if not holds(w.spec, claim):
        return None
    w.say([claim])
    return w.pick.one(ORDER_JOINERS)


# ---- layouts ---------------------------------------------------------------------------------
def caption(spec: SceneSpec, rng=None) -> Caption:
    """A caption of `spec` and the claims it makes; `rng` defaults to spec.caption_seed's."""
    pick = _Pick(rng if rng is not None else random.Random(spec.caption_seed))
    w = _Writer(spec, pick)
    groups = _groups(spec)
    units = [u for b in _chronological([_units(g, spec, pick) for g in groups]) for u in b]
    relations = _relations(spec, pick)
    count = spec.extras.get("kind") == "count" and pick.p(0.5)  # "one red ball" for singles too
    camera_moves = spec.camera is not Camera.STATIC
    camera_at = None
    if pick.p(0.9 if camera_moves else 0.3):
        camera_at = pick.one(("lead", "first", "tail", "last"))
    bg_at = pick.one(("lead", "tail", "first", "last")) if pick.p(0.8) else None

    layout = _intro_layout if pick.p(0.4) else _action_layout
    if layout is _intro_layout and camera_at == "lead":
        camera_at = "first"  # "As the camera pans left, a red ball and a blue star." reads badly
    body = layout(w, groups, units, relations, count, bg_at)
    if camera_at == "lead":
        body[0] = w.camera("lead") + body[0][:1].lower() + body[0][1:]
    elif camera_at == "tail":
        body[-1] = body[-1][:-1] + w.camera("tail") + "."
    elif camera_at == "first":
        body.insert(0, w.camera("sentence"))
    elif camera_at == "last":
        body.append(w.camera("sentence"))
    if bg_at == "first":
        body.insert(0, w.background("sentence"))
    elif bg_at == "last":
        body.append(w.background("sentence"))
    return Caption(text=_tidy(" ".join(body)), claims=tuple(dict.fromkeys(w.claims)))


def _intro_layout(w, groups, units, relations, count, bg_at) -> list[str]:
    """'A red ball and two blue squares on a brick wall. The ball drops, then bounces. ...'"""
    in_list = [r for r in relations if w.pick.p(0.5)]  # "a red ball left of a blue star, ..."
    related = {id(a): (r, b) for a, r, b in in_list}
    named = {id(b) for _, _, b in in_list}
    nouns, plural = [], False
    for g in groups:
        if id(g[0]) in named:
            continue
        if id(g[0]) in related:
            nouns.append(w.relation(g[0], *related[id(g[0])], intro=True, verb=False))
        else:
            nouns.append(w.introduce(g, count)[0])
            plural = plural or len(g) > 1
    listing = nouns[0] if len(nouns) == 1 else ", ".join(nouns[:-1]) + " and " + nouns[-1]
    opener = w.pick.one(OPENERS)
    if opener == "There is " and (plural or len(nouns) > 1):
        opener = "There are "
    if bg_at == "lead":  # "On a brick wall, a red ball ..." (not "On a brick wall, a clip of")
        opener = ""
    if len(groups) > 1 and w.pick.p(0.2):  # "Three shapes: ..."
        n = len(w.spec.objects)
        w.say(ref_claims(ObjectRef(), n))
        opener = f"{w.noun_phrase(ObjectRef(), None, plural=True, count=n)}: "
    if bg_at == "lead":
        opener = w.background("lead") + opener
    out = [opener + listing + (w.background("tail") if bg_at == "tail" else "") + "."]
    for a, rel, b in relations:  # "The red ball is to the left of the blue star."
        if (a, rel, b) not in in_list:
            out.append(w.relation(a, rel, b, intro=False) + ".")
    prev = None
    for unit in units:
        if not unit.steps:
            continue
        if unit.one_of == "one of them":  # "The blue squares: one of them slides left. ..."
            w.group_ref = ObjectRef(shape=unit.shape, color=unit.objs[0].color)
            w.say(ref_claims(w.group_ref))
            out.append(f"{w.noun_phrase(w.group_ref, 'the', plural=True)}:")
            prev = None
        sentence = w.clause(unit, intro=False)
        joiner = _order_joiner(w, prev, unit)
        if joiner and out[-1].endswith(".") and prev is not None:
            out[-1] = out[-1][:-1] + joiner + sentence + "."
        else:
            out.append(sentence + ".")
        prev = unit
    return out


def _action_layout(w, groups, units, relations, count, bg_at) -> list[str]:
    """'A red ball drops, then bounces, while two blue squares spin on a brick wall.'"""
    pick = w.pick
    still_in_relation = {id(o) for a, _, b in relations for o in (a, b)}
    clauses: list[tuple[str, _Unit | None]] = []
    for a, rel, b in relations:
        clauses.append((w.relation(a, rel, b, intro=True), None))
    for unit in units:
        if id(unit.objs[0]) in still_in_relation:
            continue
        if not unit.steps:
            unit.steps = [Segment(Motion.STILL, 0.0, w.spec.seconds)]  # a bare noun would join
        if unit.one_of:
            if unit.one_of == "one of them":
                group = next(g for g in groups if unit.objs[0] in g)
                text, w.group_ref = w.introduce(group, count)
                clauses.append((text + ":", None))
            clauses.append((w.clause(unit, intro=False), unit))
            continue
        gerund = len(units) == 1 and not relations and pick.p(0.25)  # "a red ball bouncing"
        clauses.append((w.clause(unit, intro=True, count=count, gerund=gerund), unit))

    text, prev = clauses[0]
    for clause, unit in clauses[1:]:
        if text.endswith(":"):  # "two blue squares: one of them ..."
            text += " "
        elif unit is None or prev is None:  # a list or a relation has no verb to join onto
            text += pick.one((". ", "; "))
        else:
            text += _order_joiner(w, prev, unit) or pick.one(PLAIN_JOINERS)
        text += clause
        prev = unit
    if bg_at == "lead":
        text = w.background("lead") + text[:1].lower() + text[1:]
    return [text + (w.background("tail") if bg_at == "tail" else "") + "."]


def _tidy(text: str) -> str:
    """Single spaces, a capital at the start of each sentence, hyphens where English has them."""
    text = " ".join(text.split()).replace(" ,", ",").replace(" .", ".")
    for words in HYPHENATED:
        text = text.replace(words, words.replace(" ", "-"))
    sentences = text.split(". ")
    return ". ".join(s[:1].upper() + s[1:] for s in sentences)
