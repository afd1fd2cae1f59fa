"""The benchmark: novel, reproducible suites; the ground-truth ceiling judged through MP4; the report."""

from __future__ import annotations

import re

import pytest

from mutoscope.eval.controls import psnr
from mutoscope.eval.report import NOTHING_NOVEL, markdown, novelty_markdown, plot, summarise
from mutoscope.eval.runner import (
    object_cover,
    painted,
    run_ground_truth,
    run_model,
    run_vae,
    vae_roundtrip,
)
from mutoscope.eval.scene_match import match_summary, scene_match
from mutoscope.eval.suites import SUITE_SIZES, per_background, suite
from mutoscope.world.claims import holds
from mutoscope.world.holdout import HELD_OUT_WORDS_BY_KIND, held_out_pairs, in_training, is_novel
from mutoscope.world.render import render


def test_dev_suite_is_novel_reproducible_and_true_of_its_scenes():
    prompts = suite("dev")
    assert len(prompts) == SUITE_SIZES["dev"] >= 200
    assert [p.text for p in suite("dev", 20)] == [p.text for p in prompts[:20]]
    assert len({p.text for p in prompts}) == len(prompts)
    for p in prompts:
        assert is_novel(p.spec, p.text) and not in_training(p.spec, p.text)
        assert p.claims and all(holds(p.spec, c) for c in p.claims), p.text
    kinds = {p.spec.extras.get("kind") for p in prompts}
    assert {"single", "multi", "count", "relation", "order", "camera", "figure"} <= kinds


def test_every_dev_prompt_says_what_is_novel_in_it_and_the_familiar_suite_holds_nothing_out():
    dev = suite("dev")
    for p in dev:
        words = set(re.findall(r"[a-z]+", p.text.lower()))  # "emerald-colored" holds "emerald"
        expected = {"pair"} if held_out_pairs(p.spec) else set()
        expected |= {f"{k} word" for k, held in HELD_OUT_WORDS_BY_KIND.items() if words & held}
        assert p.novelty and set(p.novelty) == expected, p.text
    assert {t for p in dev for t in p.novelty} == {"pair", "color word", "shape word", "motion word"}
    familiar = suite("familiar")
    assert len(familiar) == SUITE_SIZES["familiar"] >= 200
    assert not {p.text for p in familiar} & {p.text for p in dev}
    for p in familiar:
        assert in_training(p.spec, p.text) and p.novelty == ()
        assert p.claims and all(holds(p.spec, c) for c in p.claims), p.text


def test_ground_truth_renders_pass_and_the_report_counts_them(tmp_path):
    rows: list[dict] = []
    prompts = suite("quick", 4)
    run_ground_truth(prompts, tmp_path / "truth", 64, 64, 8.0, rows.append)
    assert [r["index"] for r in rows] == [0, 1, 2, 3]
    assert all((tmp_path / "truth" / f"{i:04d}.mp4").is_file() for i in range(4))
    summary = summarise(rows)["ground truth"]
    passed, total = summary["overall"]
    assert total == sum(len(p.claims) for p in prompts)
    assert passed >= total - 1  # the judge's ground-truth accuracy is ~97-100% per claim type
    assert 0 < summary["scene"]["object_cover"] < 0.5 and summary["scene"]["blobs"] >= 1  # 1-3 objects
    assert summary["objects"]["precision"] == summary["objects"]["recall"] == 1.0  # the scene, no more
    assert summary["objects"]["extra"] == 0.0
    table = markdown({"ground truth": summary})
    assert "| **overall** |" in table and f"({passed}/{total})" in table
    assert "| object blobs a frame (mean) |" in table
    assert "| objects seen that the scene has (precision) | 100.0% |" in table
    png = plot({"ground truth": summary}, tmp_path / "claims.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_summarise_separates_sources_and_claim_types():
    def row(source, verdicts):
        return {"source": source, "verdicts": verdicts, "consistency": {"score": 90.0}, "seconds": 1.0}

    rows = [
        row("model", [{"type": "color", "passed": True}, {"type": "motion", "passed": False}]),
        row("model", [{"type": "color", "passed": False}]),
        row("untrained", [{"type": "color", "passed": False}]),
    ]
    s = summarise(rows)
    assert s["model"]["types"] == {"color": (1, 2), "motion": (0, 1)}
    assert s["model"]["overall"] == (1, 3) and s["model"]["prompts"] == 2
    assert s["untrained"]["overall"] == (0, 1)


def test_painted_is_the_frame_mean_of_object_cover_and_blobs():
    import numpy as np

    from mutoscope.world.judge.perception import FramePerception

    quarter = np.zeros((4, 4), bool)
    quarter[:2, :2] = True
    frames = [FramePerception([], np.zeros((4, 4), bool)), FramePerception([object(), object()], quarter)]
    assert object_cover(frames).tolist() == [0.0, 0.25]
    assert painted(frames) == {"object_cover": 0.125, "blobs": 1.0}


def test_an_object_the_scene_lacks_costs_precision_not_recall():
    from dataclasses import replace

    from mutoscope.world.judge import judge
    from mutoscope.world.spec import ObjectSpec
    from mutoscope.world.vocab import Camera, Shape

    still = (p.spec for p in suite("quick", 20) if p.spec.camera is Camera.STATIC)
    scene = next(s for s in still if len(s.objects) == 1)
    taken = (scene.objects[0].color, scene.objects[0].shape)
    color, shape = next(
        (c, s) for c in ("red", "blue") for s in (Shape.SQUARE, Shape.STAR) if (c, s) != taken
    )
    # The extra object in the corner the scene's object is farthest from, so that they never touch.
    x = 0.2 if scene.objects[0].x > 0.5 else 0.8
    y = 0.2 if scene.objects[0].y > 0.5 else 0.8
    extra = ObjectSpec(shape=shape, color=color, size="medium", x=x, y=y)
    painted_more = replace(scene, objects=(*scene.objects, extra))
    reading = judge(render(painted_more, 64, 64, 8.0), []).reading
    m = scene_match(reading, scene)
    assert m == {"seen": 2, "asked": 1, "matched": 1}
    s = match_summary([m, {"seen": 1, "asked": 1, "matched": 1}])
    assert s == {"precision": 2 / 3, "recall": 1.0, "exact": 0.5, "extra": 0.5}


def test_the_report_breaks_claims_down_by_what_was_novel_in_the_prompt():
    def row(novelty, passed):
        verdicts = [{"type": "color", "passed": ok} for ok in passed]
        return {"source": "model", "verdicts": verdicts, "consistency": {"score": 50.0}, "seconds": 1.0,
                "novelty": novelty}  # fmt: skip

    rows = [row(["pair"], [True, False]), row(["pair", "color word"], [True]), row([], [False, False])]
    s = summarise(rows)["model"]
    assert s["novelty"] == {"pair": (2, 3), "color word": (1, 1), NOTHING_NOVEL: (0, 2)}
    table = novelty_markdown({"model": s})
    assert "| pair | 66.7% (2/3) |" in table and f"| {NOTHING_NOVEL} | 0.0% (0/2) |" in table
    old = {k: v for k, v in rows[0].items() if k != "novelty"}  # a report written before the tags
    assert novelty_markdown(summarise([old])) == ""


def test_vae_baseline_is_the_truth_through_the_models_vae(tmp_path, one_thread):
    from mutoscope.generate import load_model
    from mutoscope.post.mp4 import read_frames

    pipe, prompts, rows = load_model(), suite("quick", 2), []
    run_vae(prompts, pipe.vae, (64, 64), 8.0, tmp_path, rows.append)
    assert [r["source"] for r in rows] == ["ground truth through the VAE"] * 2
    truth = render(prompts[0].spec, 64, 64, 8.0)
    through = vae_roundtrip(pipe.vae, truth)
    assert through.shape == truth.shape and through.dtype == truth.dtype
    # the shipped VAE: 28.3 dB on held-out clips (worst 22.2); an untrained one is near 10 dB
    assert psnr(through, truth) > 20
    assert psnr(read_frames(tmp_path / "0000.mp4"), through) > 30  # what was judged: that, through H.264
    assert psnr(vae_roundtrip(load_model(preset="tiny").vae, truth), truth) < 15


def test_image_to_video_runs_start_from_the_truths_first_frame(tmp_path, one_thread):
    from mutoscope.generate import load_model
    from mutoscope.post.mp4 import read_frames

    pipe, prompts = load_model(), suite("quick", 1)
    truth = render(prompts[0].spec, 64, 64, 8.0)
    rows = []
    for given in (False, True):
        run_model(prompts, pipe, "m", tmp_path / str(given), 2, None, rows.append, first_frame=given)
    plain, keyed = (read_frames(tmp_path / str(g) / "0000.mp4") for g in (False, True))
    assert psnr(keyed[:1], truth[:1]) > 30 > psnr(plain[:1], truth[:1])  # given, and anchored to it
    assert [len(r["verdicts"]) for r in rows] == [len(prompts[0].claims)] * 2


def test_cli_measures_a_candidate_vaes_ceiling_alone(tmp_path, capsys, trained_test_vae, one_thread):
    import json

    from mutoscope.cli import main
    from mutoscope.post.mp4 import read_frames

    out = tmp_path / "ceiling"
    args = ["eval", "--suite", "quick", "--n", "2", "--baselines", "vae", "--vae"]
    assert main([*args, str(trained_test_vae.run), "--out", str(out)]) == 0
    rows = [json.loads(line) for line in (out / "rows.jsonl").read_text().splitlines()]
    assert [r["source"] for r in rows] == ["ground truth through the VAE"] * 2  # and no model column
    assert "VAE " + str(trained_test_vae.run) in (out / "report.md").read_text()
    cfg = trained_test_vae.cfg  # the clips are made at the candidate's own size, not the shipped one
    assert read_frames(out / "vae" / "0000.mp4").shape[1:3] == (cfg.height, cfg.width) != (64, 64)
    capsys.readouterr()
    both = ["eval", "--baselines", "vae", "--vae", str(trained_test_vae.run), "--model", str(tmp_path)]
    assert main([*both, "--out", str(tmp_path / "both")]) == 2
    assert "not both" in capsys.readouterr().err and not (tmp_path / "both").exists()
    assert main([*args, str(tmp_path / "nothing"), "--out", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err
    assert "neither an exported model nor a VAE run" in err and err.count("\n") == 1
    assert not (tmp_path / "bad").exists()  # refused before anything was written
    assert (
        main(["eval", "--vae", str(trained_test_vae.run), "--no-baselines", "--out", str(tmp_path / "b")])
        == 2
    )
    assert "add vae to --baselines" in capsys.readouterr().err
    # A shard of the suite (--skip, --n): the prompts after the first SKIP, with their own seeds.
    shard = tmp_path / "shard"
    assert main([*args, str(trained_test_vae.run), "--skip", "1", "--n", "1", "--out", str(shard)]) == 0
    rows = [json.loads(line) for line in (shard / "rows.jsonl").read_text().splitlines()]
    assert [(r["index"], r["prompt"]) for r in rows] == [(1, suite("quick")[1].text)]
    assert main([*args, str(trained_test_vae.run), "--skip", "16", "--out", str(tmp_path / "none")]) == 2
    assert "leaves no prompt" in capsys.readouterr().err and not (tmp_path / "none").exists()


def test_per_background_takes_each_backgrounds_first_prompts_of_the_suite():
    from mutoscope.errors import UserError
    from mutoscope.world.lexicon import BACKGROUNDS

    picked = per_background("dev", 2)
    named = [next(c.value for c in p.claims if c.type == "background") for p in picked]
    assert named == [b for b in BACKGROUNDS for _ in range(2)]
    dev = {p.index: p for p in suite("dev")}
    assert all(dev[p.index] == p for p in picked)
    with pytest.raises(UserError, match="night"):
        per_background("quick", 1)  # its 16 prompts name no night sky


def test_a_boundary_keeps_identity_only_where_there_are_objects_to_keep():
    from dataclasses import replace

    import numpy as np

    from mutoscope.eval.controls import boundary_identity
    from mutoscope.world.vocab import Camera

    scene = next(
        p.spec for p in suite("quick", 40) if len(p.spec.objects) > 1 and p.spec.camera is Camera.STATIC
    )
    video = render(scene, 64, 64, 8.0)  # 16 frames: a boundary at 8 sees the same objects either side
    assert boundary_identity(video, 8.0, [8]) == [True]
    gone = video.copy()  # one object lost at the boundary
    gone[8:] = render(replace(scene, objects=scene.objects[:1]), 64, 64, 8.0)[8:]
    assert boundary_identity(gone, 8.0, [8]) == [False]
    blank = np.full_like(video, 128)  # nothing to keep: not kept
    assert boundary_identity(blank, 8.0, [8]) == [False]
