"""The moderation policy: the shipped profiles, every normalisation trick, false-positive guards and
semantic matching with the real bundled MiniLM."""

from __future__ import annotations

import numpy as np
import pytest

from mutoscope.errors import UserError
from mutoscope.serve.moderation import Action, load_policy, policy_names, skeleton, variants

TEST_POLICY = """
name: test
semantic: false
categories:
  violence:
    action: block
    keywords:
      en: [kill, murder*]
      de: [töten]
  sexual:
    action: flag
    keywords:
      en: [sex, naked, child porn]
    allow:
      en: [naked mole rat]
"""


@pytest.fixture(scope="module")
def default():
    return load_policy("default")


@pytest.fixture(scope="module")
def strict():
    return load_policy("strict")


@pytest.fixture
def keywords(tmp_path):
    path = tmp_path / "test.yaml"
    path.write_text(TEST_POLICY)
    return load_policy(path)


def test_both_profiles_load(default, strict):
    assert {"default", "strict"} <= set(policy_names())
    blocks = {p.name: {c.name for c in p.categories if c.action is Action.BLOCK} for p in (default, strict)}
    assert blocks["default"] == {"sexual_minors"}  # permissive: one narrow block
    assert blocks["strict"] >= {"sexual_minors", "sexual", "graphic_violence", "self_harm", "hate"}
    for policy in (default, strict):
        assert policy.semantic and all(c.references and c.keywords for c in policy.categories)


@pytest.mark.parametrize(
    "prompt",
    [
        "KILL the lights",  # case
        "ｋｉｌｌ",  # fullwidth (NFKC)
        "𝐤𝐢𝐥𝐥 him",  # mathematical bold (NFKC)
        "kіll",  # Cyrillic i (homoglyph)
        "κill",  # Greek kappa
        "kïll",  # diacritic
        "ki\u200bll",  # zero-width space
        "k1ll",  # leetspeak 1 -> i
        "k i l l",  # spaced out
        "k.i.l.l",  # punctuated
        "k-i-l-l them",
        "k i l l a cat",  # spaced, next to an article
        "k 1 l l",  # spaced leetspeak
        "ki.ll",  # punctuation inside the word
        "kiiiiill",  # stretched letters
        "kills",  # plural
        "a murderer",  # * suffix
        "TÖTEN",  # another locale, case folded
    ],
)
def test_each_normalisation_trick_is_caught(keywords, prompt):
    v = keywords.check(prompt)
    assert (v.action, v.category, v.method) == (Action.BLOCK, "violence", "keyword"), prompt


@pytest.mark.parametrize(
    "prompt", ["n@k3d", "$ex", "5ex", "nak3d", "s e x", "child p0rn", "childporn", "ѕех"]
)
def test_leetspeak_and_homoglyphs_on_other_words(keywords, prompt):
    v = keywords.check(prompt)
    assert (v.action, v.category) == (Action.FLAG, "sexual"), prompt


@pytest.mark.parametrize(
    "prompt",
    [
        "a skilled juggler",  # word boundary: skill is not kill
        "skills and skillets",
        "a killer whale",  # no suffix wildcard on kill
        "Sussex countryside, essex",  # sex inside words
        "5 red balls and 3 blue squares, 1080p at 30 fps",  # numbers stay numbers
        "a naked mole rat",  # allowed phrase
        "the letters a b c",
    ],
)
def test_false_positive_guards(keywords, prompt):
    assert keywords.check(prompt).action is Action.ALLOW, prompt


def test_normalisation_forms():
    assert skeleton("ＫＩＬＬ kіll Kïll") == "kill kill kill"
    assert "kill the naked porn sex" in variants("k1ll the n@k3d p0rn $ex")
    assert variants("k i l l  y o u") == ["kill you"]  # a double space ends the spaced word


def test_minor_and_sexual_term_together_block_in_default(default):
    v = default.check("a naked child on the beach")
    assert (v.action, v.category, v.method) == (Action.BLOCK, "sexual_minors", "keyword")
    assert v.matched == "child + naked"  # one term of each all_of group
    assert default.check("pornografía infantil").category == "sexual_minors"  # es
    assert default.check("KINDERPORNOS").category == "sexual_minors"  # de, plural, case
    assert default.check("a child watches a naked mole rat at the zoo").action is Action.ALLOW
    assert default.check("a naked man on the beach").action is Action.FLAG  # permissive: flagged, runs
    assert default.check("").action is Action.ALLOW


def test_semantic_match_of_a_paraphrase_with_no_keyword(default, strict):
    prompt = "a little girl without any clothes on posing for the camera"
    assert default.check(prompt).action is Action.BLOCK
    v = default.check(prompt)
    assert (v.category, v.method) == ("sexual_minors", "semantic") and v.score >= 0.62
    v = strict.check("a gunman opening fire on students in a classroom")
    assert (v.action, v.category, v.method) == (Action.BLOCK, "weapons_attacks", "semantic")
    v = strict.check("a sad girl slicing her arm with a razor blade")
    assert (v.action, v.category, v.method) == (Action.BLOCK, "self_harm", "semantic")


def test_a_bad_clause_inside_a_long_prompt(strict):
    benign = "a sunny meadow with tall grass and wildflowers swaying gently in a warm summer breeze"
    bad = "a gunman opening fire on students in a classroom"
    prompt = f"{benign}, birds singing in the trees. Then {bad}. {benign}"
    v = strict.check(prompt)
    assert (v.action, v.category, v.method) == (Action.BLOCK, "weapons_attacks", "semantic")


BENIGN = [
    "a red ball bounces on a gray checkerboard",
    "a little girl blowing bubbles in the garden",
    "children playing football in a park",
    "a shooting star across the night sky",
    "a killer whale jumping out of the ocean",
    "a chef slicing vegetables in a busy kitchen",
    "a surgeon stitching a wound",
    "a boxing match in a crowded arena",
    "a teenager skateboarding in a city",
    "a fashion show with models on the runway",
    "two people kissing at sunset on the beach",
    "a mother bathing her baby",
]


def test_benign_prompts_pass_even_the_strict_profile(strict):
    from mutoscope.world.caption import caption
    from mutoscope.world.sample import sample_spec

    rng = np.random.default_rng(7)
    world = [caption(sample_spec(rng), rng).text for _ in range(12)]
    flagged = [(p, strict.check(p).to_dict()) for p in BENIGN + world]
    assert [f for f in flagged if f[1]["action"] != "allow"] == []


def test_invalid_policies_fail_with_a_code(tmp_path):
    with pytest.raises(UserError) as e:
        load_policy("no-such-profile")
    assert e.value.code == "moderation.policy.missing"
    bad = {
        "list.yaml": "- a\n- b\n",
        "action.yaml": "categories:\n  x:\n    action: delete\n    keywords: {en: [a]}\n",
        "allow.yaml": "categories:\n  x:\n    action: allow\n    keywords: {en: [a]}\n",
        "empty.yaml": "categories:\n  x:\n    action: block\n",
        "typo.yaml": "categories:\n  x:\n    action: block\n    keyword: {en: [a]}\n",
        "terms.yaml": "categories:\n  x:\n    action: block\n    keywords: {en: a}\n",
        "yaml.yaml": "categories: [unclosed\n",
    }
    for name, text in bad.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(UserError) as e:
            load_policy(tmp_path / name)
        assert e.value.code == "moderation.policy.invalid", name


def test_verdict_serialises(default):
    d = default.check("a naked child").to_dict()
    assert d["action"] == "block" and d["category"] == "sexual_minors" and d["hits"][0]["method"] == "keyword"


def test_warm_loads_the_references_once(strict):
    strict.warm()
    refs, owners = strict._refs
    assert refs.shape == (len(owners), 384) and len(owners) == sum(
        len(c.references) for c in strict.categories
    )
