"""Operator moderation policy: keyword and semantic matching of prompts, an action per category.

A policy is a YAML file (see src/mutoscope/policies/: `default` is permissive, `strict` is not), never
a hard-coded jurisdiction. Each category has keyword lists per locale, optional `all_of` groups (one
term from every group must appear: "a minor" AND "a sexual term"), a description and examples for
semantic matching, a cosine threshold, and an action: `block` (the API answers 422
`moderation.input.text`, nothing is charged) or `flag` (the generation runs and carries the flag).

Keyword matching runs on normalised variants of the prompt, so the usual evasions are caught:
Unicode compatibility forms (NFKC: fullwidth, mathematical letters), zero-width characters, case,
homoglyphs from other scripts and diacritics (an ASCII skeleton), leetspeak, and letters spaced
or punctuated apart ("k i l l", "k.i.l.l"). Matches respect word boundaries ("skill" is not "kill").
Semantic matching compares the prompt's pooled text-encoder embedding (MiniLM, the mean of the token
states over the mask) with each category's description and examples; it catches paraphrases that
use none of the keywords.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache
from pathlib import Path

import yaml

from mutoscope.errors import UserError

POLICY_DIR = Path(__file__).resolve().parent.parent / "policies"

# Homoglyphs that NFKC leaves alone: Cyrillic, Greek and Latin look-alikes -> their ASCII skeleton
# (a small subset of Unicode's confusables.txt, the characters seen in evasions).
_CONFUSABLES = str.maketrans({
    "а": "a", "б": "b", "в": "b", "г": "r", "д": "d", "е": "e", "ё": "e", "з": "3", "и": "u", "к": "k",
    "м": "m", "н": "h", "о": "o", "п": "n", "р": "p", "с": "c", "т": "t", "у": "y", "х": "x", "ц": "u",
    "ь": "b", "ѕ": "s", "і": "i", "ї": "i", "ј": "j", "ԁ": "d", "ԛ": "q", "ԝ": "w", "һ": "h", "ӏ": "l",
    "α": "a", "β": "b", "γ": "y", "δ": "d", "ε": "e", "ζ": "z", "η": "n", "ι": "i", "κ": "k", "μ": "u",
    "ν": "v", "ο": "o", "ρ": "p", "σ": "o", "ς": "c", "τ": "t", "υ": "u", "χ": "x", "ω": "w",
    "ı": "i", "ȷ": "j", "ł": "l", "ø": "o", "đ": "d", "ħ": "h", "ŧ": "t", "ɑ": "a", "ɡ": "g", "ɩ": "i",
    "ʟ": "l", "ɴ": "n", "ʀ": "r", "ꜱ": "s", "ᴀ": "a", "ᴄ": "c", "ᴅ": "d", "ᴇ": "e", "ᴋ": "k", "ᴍ": "m",
    "ᴏ": "o", "ᴘ": "p", "ᴛ": "t", "ᴜ": "u", "ᴠ": "v", "ᴡ": "w", "ᴢ": "z", "æ": "ae", "œ": "oe",
})  # fmt: skip
# Invisible characters used to split a word without a visible gap.
_INVISIBLE = dict.fromkeys(map(ord, "\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180e\u200b\u200c\u200d"
                                    "\u200e\u200f\u2060\u2061\u2062\u2063\u2064\ufeff"))  # fmt: skip
_LEET = {"4": "a", "3": "e", "0": "o", "5": "s", "7": "t", "@": "a", "$": "s"}  # plus "1": i or l
_ARTICLES = ("a", "i")  # single-letter words that sit next to a spaced-out word: "k i l l a cat"


class Action(StrEnum):
    ALLOW = "allow"
    FLAG = "flag"
    BLOCK = "block"


_SEVERITY = {Action.ALLOW: 0, Action.FLAG: 1, Action.BLOCK: 2}


@dataclass(frozen=True)
class Verdict:
    """The decision on one prompt: the most severe hit (block > flag; keyword > semantic)."""

    action: Action
    category: str | None = None
    matched: str | None = None  # the keyword, or the description / example that was close
    method: str | None = None  # "keyword" | "semantic"
    score: float | None = None  # cosine similarity, for semantic hits
    hits: tuple[Verdict, ...] = ()  # every category that matched, most severe first

    @property
    def blocked(self) -> bool:
        return self.action is Action.BLOCK

    def to_dict(self) -> dict:
        hits = [{k: v for k, v in h.to_dict().items() if k != "hits"} for h in self.hits]
        return {"action": str(self.action), "category": self.category, "matched": self.matched,
                "method": self.method, "score": self.score, "hits": hits}  # fmt: skip


# --- normalisation ----------------------------------------------------------------------------------


def skeleton(text: str) -> str:
    """NFKC, invisible characters dropped, case folded, homoglyphs and diacritics to ASCII letters."""
    text = unicodedata.normalize("NFKC", text).translate(_INVISIBLE).casefold().translate(_CONFUSABLES)
    decomposed = unicodedata.normalize("NFKD", text)
    return unicodedata.normalize("NFC", "".join(c for c in decomposed if not unicodedata.combining(c)))


def _deleet(token: str, one: str) -> str:
    """Leetspeak back to letters, inside tokens that hold a letter (`p0rn`) or stand alone (`k 1 l l`)."""
    if len(token) > 1 and not any(c.isalpha() for c in token):
        return token  # a number ("2024", "16") stays a number
    return "".join(_LEET.get(c, one if c == "1" else c) for c in token)


def _collapse(pieces: list[tuple[str, str]]) -> list[str]:
    """Join runs of >= 3 single characters with the same separator: "k i l l" -> "kill".

    `pieces` are (word, separator-before-it). A run also yields itself without a leading or trailing
    article ("a k i l l", "k i l l a cat"), the one place where spaced text is ambiguous.
    """
    words: list[str] = []
    i = 0
    while i < len(pieces):
        j = i + 1
        if len(pieces[i][0]) == 1:
            while (
                j < len(pieces)
                and len(pieces[j][0]) == 1
                and (j == i + 1 or pieces[j][1] == pieces[i + 1][1])
            ):
                j += 1
        run = [w for w, _ in pieces[i:j]]
        if len(run) >= 3:
            words.append("".join(run))
            trimmed = run[1:] if run[0] in _ARTICLES else run
            trimmed = trimmed[:-1] if trimmed[-1] in _ARTICLES else trimmed
            if len(trimmed) < len(run):
                words.append("".join(trimmed))
        else:
            words.extend(run)
        i = j
    return words


def _words(text: str, join_inner: bool) -> str:
    """Words of `text` separated by single spaces; punctuation inside a word split or dropped."""
    pieces: list[tuple[str, str]] = []
    for m in re.finditer(r"(\s*)(\S+)", text):
        gap, token = m.groups()
        if join_inner:  # "ki.ll", "n-a-k-e-d" -> one word
            word = "".join(c for c in token if c.isalnum())
            if word:
                pieces.append((word, gap))
        else:
            for k, sub in enumerate(re.finditer(r"([\W_]*)([^\W_]+)", token)):
                sep, word = sub.groups()
                pieces.append((word, gap + sep if k == 0 else sep))
    return " ".join(_collapse(pieces))


def variants(text: str) -> list[str]:
    """The normalised forms of a prompt that keywords are matched against (plain and de-leeted)."""
    base = skeleton(text)
    forms = [base]
    if any(c in base for c in "1" + "".join(_LEET)):
        for one in ("i", "l"):
            forms.append(" ".join(_deleet(t, one) for t in re.split(r"(\s+)", base) if not t.isspace()))
    out = dict.fromkeys(_words(f, join) for f in forms for join in (False, True))
    return [v for v in out if v]


def _pattern(keyword: str) -> str:
    """A regex for one normalised keyword: letters may repeat ("kiiill"), plurals and `*` suffixes."""
    prefix = keyword.endswith("*")
    words = _words(skeleton(keyword.rstrip("*")), join_inner=False).split()
    if not words:
        raise ValueError(f"empty keyword {keyword!r}")
    body = " ?".join("".join(re.escape(c) + "+" for c in w) for w in words)  # "child porn" | "childporn"
    tail = r"\w*" if prefix else "(?:e?s)?"
    spaced = ord(words[0][0]) < 0x2E80 and ord(words[-1][-1]) < 0x2E80  # CJK writes no word boundaries
    return rf"(?<!\w){body}{tail}(?!\w)" if spaced else body + tail


def _regex(keywords: Iterable[str]) -> re.Pattern | None:
    keywords = sorted(set(keywords), key=len, reverse=True)
    return re.compile("|".join(f"(?:{_pattern(k)})" for k in keywords)) if keywords else None


# --- the policy -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Category:
    name: str
    action: Action
    keywords: dict[str, tuple[str, ...]]  # locale -> terms
    all_of: tuple[dict[str, tuple[str, ...]], ...] = ()  # groups: one term of every group must match
    description: str = ""
    examples: tuple[str, ...] = ()
    threshold: float = 0.6  # cosine similarity for a semantic hit; > 1 turns semantic matching off
    allow: dict[str, tuple[str, ...]] = field(default_factory=dict)  # phrases that are never a hit
    _any: re.Pattern | None = field(default=None, repr=False, compare=False)
    _groups: tuple[re.Pattern, ...] = field(default=(), repr=False, compare=False)
    _allow: re.Pattern | None = field(default=None, repr=False, compare=False)

    @property
    def references(self) -> tuple[str, ...]:
        """The texts a prompt's embedding is compared with."""
        return tuple(t for t in (self.description, *self.examples) if t)

    def keyword_hit(self, forms: list[str]) -> str | None:
        """The matched keyword (or `a + b` for an all_of combination) in any form of the prompt."""
        for text in forms:
            if self._allow is not None:  # "naked mole rat" says nothing about nudity
                text = self._allow.sub("|", text)
            if self._any is not None and (m := self._any.search(text)):
                return m.group(0)
            if self._groups:
                found = [g.search(text) for g in self._groups]
                if all(found):
                    return " + ".join(m.group(0) for m in found if m)
        return None


class Policy:
    """A loaded policy: `check(prompt) -> Verdict`. Thread-safe; the encoder is loaded on first use."""

    def __init__(self, name: str, categories: list[Category], *, semantic: bool = True,
                 encoder: Callable[[list[str]], object] | None = None):  # fmt: skip
        self.name = name
        self.categories = categories
        self.semantic = semantic and any(c.references and c.threshold <= 1 for c in categories)
        self._embed = encoder
        self._refs = None  # (R, D) normalised reference embeddings, with their (category, text) owners
        self._lock = threading.Lock()

    def check(self, prompt: str) -> Verdict:
        """Moderate one prompt: allow, flag or block, with the category and what matched."""
        forms = variants(prompt)
        hits = []
        for c in self.categories:
            if (kw := c.keyword_hit(forms)) is not None:
                hits.append(Verdict(c.action, c.name, kw, "keyword"))
        if self.semantic and prompt.strip():
            keyed = {h.category for h in hits}
            hits += [h for h in self._semantic_hits(prompt) if h.category not in keyed]
        if not hits:
            return Verdict(Action.ALLOW)
        hits.sort(key=lambda h: (-_SEVERITY[h.action], h.method != "keyword", -(h.score or 0)))
        top = hits[0]
        return Verdict(top.action, top.category, top.matched, top.method, top.score, tuple(hits))

    def warm(self) -> None:
        """Load the encoder and embed the references now (~1-2 s), not on the first request."""
        if self.semantic:
            with self._lock:
                self._references()

    def _references(self):
        if self._refs is None:
            owners = [(c, t) for c in self.categories if c.threshold <= 1 for t in c.references]
            self._refs = (self._pooled([t for _, t in owners]), owners)
        return self._refs

    def _semantic_hits(self, prompt: str) -> list[Verdict]:
        with self._lock:
            refs, owners = self._references()
            q = self._pooled(_segments(prompt))  # (S, D)
        sims = q @ refs.T  # (S, R) cosine similarities
        best, _ = sims.max(0)  # (R,): the closest segment of the prompt to each reference
        out: dict[str, Verdict] = {}
        for score, (c, text) in zip(best.tolist(), owners, strict=True):
            if score >= c.threshold and (c.name not in out or score > (out[c.name].score or 0)):
                out[c.name] = Verdict(c.action, c.name, text, "semantic", round(score, 4))
        return list(out.values())

    def _pooled(self, texts: list[str]):
        """(N, D) unit-length mean-pooled embeddings."""
        import torch.nn.functional as F

        if self._embed is None:
            self._embed = _default_encoder().pooled
        return F.normalize(self._embed(texts).float(), dim=-1)


def _segments(prompt: str, window: int = 24) -> list[str]:
    """The prompt, its sentences and overlapping word windows: a bad clause inside a long benign
    prompt is judged on its own, and nothing falls past the encoder's token limit."""
    segs = [prompt.strip()]
    segs += [s.strip() for s in re.split(r"[.;!?\n]+", prompt) if s.strip()]
    words = prompt.split()
    if len(words) > window:
        segs += [" ".join(words[i : i + window]) for i in range(0, len(words) - window // 2, window // 2)]
    return list(dict.fromkeys(segs))


@cache
def _default_encoder():
    """The bundled MiniLM, loaded once per process on the first semantic check."""
    from mutoscope.text import TextEncoder

    return TextEncoder()


# --- loading ----------------------------------------------------------------------------------------


def policy_names() -> list[str]:
    """Names of the shipped profiles."""
    return sorted(p.stem for p in POLICY_DIR.glob("*.yaml"))


def load_policy(path_or_name: str | Path, *, encoder: Callable[[list[str]], object] | None = None) -> Policy:
    """A policy from a YAML file, or a shipped profile by name (`default`, `strict`).

    `encoder` maps a list of texts to (N, D) pooled embeddings (default: the bundled MiniLM's
    `TextEncoder.pooled`, loaded on first use). Invalid files raise UserError
    `moderation.policy.invalid`.
    """
    path = Path(path_or_name)
    if not path.suffix and (POLICY_DIR / f"{path_or_name}.yaml").is_file():
        path = POLICY_DIR / f"{path_or_name}.yaml"
    if not path.is_file():
        shipped = ", ".join(policy_names())
        raise UserError("moderation.policy.missing", f"no policy file {path_or_name!s} (shipped: {shipped})")
    try:
        doc = yaml.safe_load(path.read_text())
        return _parse(doc, default_name=path.stem, encoder=encoder)
    except (yaml.YAMLError, ValueError, TypeError, KeyError, re.error) as e:
        raise UserError("moderation.policy.invalid", f"{path}: {e}".replace("\n", " ")) from None


def _terms(value, where: str) -> dict[str, tuple[str, ...]]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"{where} must map locales to lists of terms")
    out = {}
    for locale, terms in value.items():
        if not isinstance(terms, list) or not all(isinstance(t, str) and t.strip() for t in terms):
            raise ValueError(f"{where}.{locale} must be a list of non-empty strings")
        out[str(locale)] = tuple(terms)
    return out


_CATEGORY_KEYS = {"action", "keywords", "all_of", "allow", "description", "examples", "threshold"}


def _parse(doc, default_name: str, encoder) -> Policy:
    if not isinstance(doc, dict) or not isinstance(doc.get("categories"), dict):
        raise ValueError("a policy is a mapping with a `categories` mapping")
    if unknown := set(doc) - {"name", "version", "description", "semantic", "categories"}:
        raise ValueError(f"unknown policy keys: {', '.join(sorted(unknown))}")
    categories = []
    for name, spec in doc["categories"].items():
        if not isinstance(spec, dict):
            raise ValueError(f"category {name} must be a mapping")
        if unknown := set(spec) - _CATEGORY_KEYS:
            raise ValueError(f"category {name}: unknown keys {', '.join(sorted(unknown))}")
        action = Action(spec.get("action", "block"))
        if action is Action.ALLOW:
            raise ValueError(f"category {name}: action must be block or flag")
        keywords = _terms(spec.get("keywords"), f"{name}.keywords")
        groups = tuple(_terms(g, f"{name}.all_of") for g in spec.get("all_of") or ())
        allow = _terms(spec.get("allow"), f"{name}.allow")
        examples = tuple(str(e) for e in spec.get("examples") or ())
        cat = Category(str(name), action, keywords, groups, str(spec.get("description") or ""), examples,
                       float(spec.get("threshold", 0.6)), allow,
                       _regex(t for terms in keywords.values() for t in terms),
                       tuple(_regex(t for terms in g.values() for t in terms) for g in groups),
                       _regex(t for terms in allow.values() for t in terms))  # fmt: skip
        if not (cat.keywords or cat.all_of or cat.references):
            raise ValueError(f"category {name} has no keywords, all_of groups or description")
        categories.append(cat)
    return Policy(str(doc.get("name") or default_name), categories, semantic=bool(doc.get("semantic", True)),
                  encoder=encoder)  # fmt: skip
