"""The prompt grammar: read a caption, or a user's prompt in the world's words, back into claims.

A small left-to-right reader over lexicon phrases (longest match first). What it understands:

- noun phrases `[number] [size] [color] shape|object`: "a crimson ball", "two blue squares". A noun
  phrase with a color and a shape claims both (COLOR and SHAPE), one with a size claims it (SIZE),
  one with a number claims the count (COUNT; "a"/"an" count nothing);
- predicates that describe the last subject: "the ball is crimson", "a circle that is small",
  "the red shape is a star", "a box colored blue";
- verbs, with their direction or spin: "slides to the right", "spins clockwise". A verb applies to
  the current subjects ("a red ball and a blue star bounce"), to "it"/"they"/"one of them" alike,
  and to any object when the prompt names none ("spins clockwise");
- order: "A, then B" / "A before B" claim A then B, as do "After A, B" and "B after A";
- relations "X to the left of Y", camera moves ("the camera pans left", "static camera"),
  backgrounds ("on a brick wall").

Unknown words are skipped, so adverbs and openers ("slowly", "a video of") cost nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from mutoscope.errors import UserError
from mutoscope.world.claims import Claim, ClaimType, Event, ObjectRef
from mutoscope.world.lexicon import DIRECTIONAL, MAX_PHRASE_WORDS, PHRASES, SPINNING, Kind, Word
from mutoscope.world.vocab import Camera, Motion, Relation, Shape

_TOKEN = re.compile(r"[a-z]+|\d+|[.,;:!?]")
_NOUN_PHRASE = {Kind.NUMBER, Kind.SIZE, Kind.COLOR, Kind.SHAPE, Kind.GENERIC}
_TRANSPARENT = {Kind.FILLER, Kind.DET}  # and unknown words
# Words that name something of the world: a prompt without any of them is unparsed.
_CONTENT = {Kind.COLOR, Kind.SIZE, Kind.SHAPE, Kind.MOTION, Kind.DIRECTION, Kind.SPIN, Kind.CAMERA,
            Kind.CAMERA_SUBJECT, Kind.RELATION, Kind.BACKGROUND}  # fmt: skip
CAMERA_SUBJECT = "camera"  # stands in the subject list for "the camera"


def tokenize(text: str) -> list[str]:
    """Lower-case words, digits and sentence punctuation; hyphens split words, "n't" reads "not"."""
    return _TOKEN.findall(text.lower().replace("n't", " not"))


def read_words(text: str) -> list[Word | None]:
    """Longest-match lexicon phrases over the tokens; None for a word the lexicon does not know."""
    tokens, out, i = tokenize(text), [], 0
    while i < len(tokens):
        for n in range(min(MAX_PHRASE_WORDS, len(tokens) - i), 0, -1):
            word = PHRASES.get(tuple(tokens[i : i + n]))
            if word is not None:
                out.append(word)
                i += n
                break
        else:
            out.append(None)
            i += 1
    return out


def ref_claims(ref: ObjectRef, count: int | None = None) -> list[Claim]:
    """What a noun phrase says by itself: its count, its color and shape, its size."""
    out = []
    if count is not None:
        out.append(Claim(ClaimType.COUNT, subject=ref, count=count))
    if ref.color and ref.shape:
        out.append(Claim(ClaimType.COLOR, subject=ObjectRef(shape=ref.shape), value=ref.color))
        out.append(Claim(ClaimType.SHAPE, subject=ObjectRef(color=ref.color), value=str(ref.shape)))
    if ref.size:
        out.append(Claim(ClaimType.SIZE, subject=replace(ref, size=None), value=ref.size))
    return out


@dataclass
class _NounPhrase:
    count: int | None = None
    size: str | None = None
    color: str | None = None
    shape: Shape | None = None
    head: bool = False  # saw a noun (a shape or object/thing)

    def ref(self) -> ObjectRef:
        return ObjectRef(shape=self.shape, color=self.color, size=self.size)


@dataclass
class _Reader:
    # A Claim, an event's index (its MOTION claim), or ("order", i, j): events are filled in
    # (direction, spin) after their verb, so these become claims only in finish().
    claims: list = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    subjects: list = field(default_factory=list)  # ObjectRef or CAMERA_SUBJECT
    phrase: _NounPhrase | None = None
    list_open: bool = False  # "A and B ..." still gathering subjects, no verb yet
    has_subject: bool = False  # a subject was named in this sentence (predicates need one)
    predicate: str | None = None  # "any": a color, size or noun describes; "adjective": no noun
    described: bool = False  # the last phrase described the subject ("is small and red")
    relation: Relation | None = None  # a relation waiting for its object
    open_events: list[int] = field(default_factory=list)  # the last verb's, for direction / spin
    last_events: list[int] = field(default_factory=list)
    pending: str | None = None  # "then": next events follow the last; "reverse": precede them
    lead: tuple | None = None  # sentence-initial "After A, B" / "Before B, A": (kind, stored)
    sentence_events: bool = False

    def word(self, w: Word | None) -> None:
        kind = w.kind if w else None
        if kind in _NOUN_PHRASE:
            self.noun(w)
            return
        if kind is Kind.DET and self.phrase and self.phrase.head:
            self.flush()  # "a red ball the ..." : a new phrase starts
        if kind is None or kind in _TRANSPARENT:
            return
        self.flush()
        if kind is Kind.PREDICATE:
            self.predicate = "any" if self.has_subject else None
            return
        described, self.described = self.described, False
        self.predicate = self.relation = None
        if kind is Kind.MOTION:
            self.verb(w.value, w.extra)
        elif kind is Kind.DIRECTION or kind is Kind.SPIN:
            for i in self.open_events:
                ev = self.events[i]
                if kind is Kind.DIRECTION and ev.direction is None and ev.motion in DIRECTIONAL:
                    self.events[i] = replace(ev, direction=w.value)
                if kind is Kind.SPIN and ev.spin is None and ev.motion in SPINNING:
                    self.events[i] = replace(ev, spin=w.value)
        elif kind is Kind.RELATION:
            self.relation = w.value
        elif kind is Kind.CAMERA:
            self.camera(w.value)
        elif kind is Kind.CAMERA_SUBJECT:
            self.subjects, self.list_open, self.has_subject = [CAMERA_SUBJECT], False, True
            self.open_events, self.pending = [], None
        elif kind is Kind.CAMERA_STATIC:
            if self.subjects == [CAMERA_SUBJECT]:
                self.camera(Camera.STATIC)
        elif kind is Kind.BACKGROUND:
            self.claims.append(Claim(ClaimType.BACKGROUND, value=str(w.value)))
        elif kind is Kind.THEN:
            self.pending, self.open_events = "then", []
        elif kind is Kind.BEFORE or kind is Kind.AFTER:
            self.open_events = []
            if not self.sentence_events:
                self.lead = (kind, None)
            else:
                self.pending = "then" if kind is Kind.BEFORE else "reverse"
        elif kind is Kind.CONJ or kind is Kind.COMMA:
            self.open_events = []
            if described:  # "small and red": one more adjective may follow
                self.predicate = "adjective"
        elif kind is Kind.STOP:
            self.list_open = self.has_subject = self.sentence_events = False
            self.open_events, self.pending, self.lead = [], None, None

    def noun(self, w: Word) -> None:
        p = self.phrase
        if p and p.head:  # the noun ends a phrase, but "star shaped object", "ball of big size"
            goes_on = (w.kind is Kind.GENERIC and p.shape) or (w.kind is Kind.SIZE and not p.size)
            if not goes_on:
                self.flush()
                p = None
        if p is None:
            p = self.phrase = _NounPhrase()
        if w.kind is Kind.NUMBER:
            p.count = w.value
        elif w.kind is Kind.SIZE:
            p.size = w.value
        elif w.kind is Kind.COLOR:
            p.color = w.value
        else:
            p.head = True
            if w.kind is Kind.SHAPE:
                p.shape = w.value

    def flush(self) -> None:
        p, self.phrase = self.phrase, None
        if p is None:
            return
        last = self.subjects[-1] if self.subjects else None
        describes = (
            isinstance(last, ObjectRef)
            and p.count is None
            and (self.predicate == "any" or (self.predicate == "adjective" and not p.head))
        )
        self.predicate = None
        if describes:  # "the ball is crimson", "the red shape is a star"
            ref = ObjectRef(
                shape=p.shape or last.shape, color=p.color or last.color, size=p.size or last.size
            )
            self.subjects[-1] = ref
            self.claims += ref_claims(ref)
            self.described, self.list_open = True, False
        elif not p.head:
            return  # "a large" with no noun names nothing
        elif self.relation is not None:
            other, rel = p.ref(), self.relation
            self.relation = None
            subject = self.subjects[-1] if self.subjects else None
            if isinstance(subject, ObjectRef):  # the last subject named: "A and B left of C" is B
                self.claims.append(Claim(ClaimType.RELATION, subject=subject, value=str(rel), other=other))
            self.claims += ref_claims(other, p.count)
        else:
            ref = p.ref()
            self.claims += ref_claims(ref, p.count)
            self.subjects = [*self.subjects, ref] if self.list_open else [ref]
            self.list_open = self.has_subject = True

    def verb(self, motion: Motion, implied) -> None:
        if self.subjects == [CAMERA_SUBJECT]:
            if motion in (Motion.STILL, Motion.ORBIT):  # "the camera holds still / orbits"
                self.camera(Camera.STATIC if motion is Motion.STILL else Camera.ORBIT)
            return
        subjects = [s for s in self.subjects if isinstance(s, ObjectRef)] or [ObjectRef()]
        new = []
        for s in subjects:
            new.append(len(self.events))
            self.claims.append(len(self.events))
            self.events.append(Event(subject=s, motion=motion, direction=implied))
        self.open_events, self.list_open, self.sentence_events = new, False, True
        last = self.last_events
        if self.pending == "then":
            self.order(last, new)
        elif self.pending == "reverse":  # "B after A": B is the later one
            self.order(new, last)
            new = last
        self.pending = None
        if self.lead is not None:
            kind, stored = self.lead
            if stored is None:
                self.lead = (kind, new)
            else:
                self.lead = None
                self.order(*((stored, new) if kind is Kind.AFTER else (new, stored)))
                if kind is Kind.BEFORE:
                    new = stored
        self.last_events = new

    def order(self, first: list[int], then: list[int]) -> None:
        self.claims += [("order", a, b) for a in first for b in then]

    def camera(self, move: Camera) -> None:
        self.claims.append(Claim(ClaimType.CAMERA, value=str(move)))
        self.open_events, self.list_open, self.pending = [], False, None

    def finish(self) -> list[Claim]:
        self.flush()
        out: dict[Claim, None] = {}
        for c in self.claims:
            if isinstance(c, int):
                c = Claim(ClaimType.MOTION, event=self.events[c])
            elif isinstance(c, tuple):
                c = Claim(ClaimType.ORDER, event=self.events[c[1]], then=self.events[c[2]])
            out[c] = None
        return list(out)


def parse_prompt(text: str) -> list[Claim]:
    """The claims a caption or prompt makes, in order of appearance, without duplicates.

    Raises UserError("prompt.unparsed") when the text names nothing of the world's vocabulary. A
    prompt that names something but claims nothing checkable ("a circle") gives [].
    """
    words = read_words(text)
    reader = _Reader()
    for w in words:
        reader.word(w)
    claims = reader.finish()
    if not claims and not any(w is not None and w.kind in _CONTENT for w in words):
        shown = text.strip()[:60] or "(empty)"
        raise UserError(
            "prompt.unparsed",
            f"the prompt {shown!r} names nothing this world knows: use its shapes, colors, "
            "motions, camera moves or backgrounds (e.g. 'a red ball bounces on a brick wall')",
        )
    return claims
