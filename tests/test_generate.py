"""THE inference path on real files: MP4 + poster + record, seeds, bad input, cancel, the CLI."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mutoscope.cli import main
from mutoscope.errors import UserError
from mutoscope.generate import GenerationCanceled, GenerationRequest, generate, load_model, save_model
from mutoscope.post.mp4 import probe, read_frames, read_record, sidecar_path

BIN = Path(sys.executable).with_name("mutoscope")


@pytest.fixture(scope="module")
def pipe():
    """The `test` preset (32x32, 8 frames at 8 fps), randomly initialised: real parts, tiny sizes."""
    return load_model(preset="test")


@pytest.fixture(scope="module")
def trained_like(pipe):
    """The same model with its weights moved off the zero init, so that the prompt matters."""
    p = load_model(preset="test")
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for w in p.dit.parameters():
            w.add_((0.05 * torch.randn(w.shape, generator=g)).to(w.dtype))
    return p


def test_writes_a_playable_mp4_with_poster_and_record(pipe, tmp_path):
    req = GenerationRequest(
        "a red ball bounces", negative_prompt="blurry", seed=7, steps=3, cfg=4.0, seconds=1
    )
    result = generate(pipe, req, tmp_path / "clip.mp4")
    assert result.video == tmp_path / "clip.mp4" and result.seed == 7
    info = probe(result.video)
    assert (info["codec"], info["pix_fmt"], info["frames"]) == ("h264", "yuv420p", 8)
    assert (info["width"], info["height"], info["fps"]) == (32, 32, 8.0)
    record = read_record(result.video)
    assert record == json.loads(sidecar_path(result.video).read_text()) == result.record
    assert record["prompt"] == "a red ball bounces" and record["negative_prompt"] == "blurry"
    assert (record["seed"], record["steps"], record["cfg"], record["sampler"]) == (7, 3, 4.0, "euler")
    assert record["model"] == pipe.model_id and pipe.model_id.startswith("test-")
    assert Image.open(result.poster).size == (32, 32) and result.poster.suffix == ".png"
    assert set(result.timings) >= {"text_s", "denoise_s", "step_s", "decode_s", "encode_s", "total_s"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.json", "clip.mp4", "clip.png"]


def test_seed_decides_the_video(trained_like, tmp_path, monkeypatch):
    import mutoscope.post.mp4 as mp4

    made = []  # the frames generate() hands the encoder, before H.264
    write = mp4.write_mp4_stream

    def keep(path, chunks, *args, **kw):
        made.append([])
        return write(path, (made[-1].append(c.copy()) or c for c in chunks), *args, **kw)

    monkeypatch.setattr(mp4, "write_mp4_stream", keep)

    def frames(name, seed, prompt="a red ball bounces"):
        generate(trained_like, GenerationRequest(prompt, seed=seed, steps=2), tmp_path / name)
        return read_frames(tmp_path / name).astype(int)

    a, again, other = frames("a.mp4", 1), frames("b.mp4", 1), frames("c.mp4", 2)
    # Bit for bit before encoding, and after it (post/mp4.py: x264's threads fixed, its macroblock
    # tree off at this width, where it read memory it had not written).
    assert np.array_equal(np.concatenate(made[0]), np.concatenate(made[1]))
    assert np.array_equal(a, again)
    assert np.abs(a - other).mean() > 1
    assert np.abs(a - frames("d.mp4", 1, "two blue squares")).mean() > 0  # the prompt matters


def test_random_seed_is_recorded(pipe, tmp_path):
    result = generate(pipe, GenerationRequest("a ball", steps=1), tmp_path / "x.mp4")
    assert isinstance(result.seed, int) and result.record["seed"] == result.seed


@pytest.mark.parametrize(
    ("req", "code"),
    [
        (GenerationRequest("   "), "input.prompt.empty"),
        (GenerationRequest("a ball", steps=0), "input.steps.invalid"),
        (GenerationRequest("a ball", steps=2.5), "input.steps.invalid"),
        (GenerationRequest("a ball", cfg=-1.0), "input.cfg.invalid"),
        (GenerationRequest("a ball", cfg=float("nan")), "input.cfg.invalid"),
        (GenerationRequest("a ball", cfg=True), "input.cfg.invalid"),
        (GenerationRequest("a ball", steps=True), "input.steps.invalid"),
        (GenerationRequest("a ball", seed=False), "input.seed.invalid"),
        (GenerationRequest("a ball", sampler="ddim"), "input.sampler.unknown"),
        (GenerationRequest("a ball", seconds=0), "input.seconds.invalid"),
        (GenerationRequest("a ball", seed=-3), "input.seed.invalid"),
    ],
)
def test_bad_input_raises_user_error_and_writes_nothing(pipe, tmp_path, req, code):
    with pytest.raises(UserError) as e:
        generate(pipe, req, tmp_path / "x.mp4")
    assert e.value.code == code
    assert list(tmp_path.iterdir()) == []


def test_bad_output_and_model_paths(pipe, tmp_path):
    with pytest.raises(UserError, match="mp4") as e:
        generate(pipe, GenerationRequest("a ball"), tmp_path / "x.gif")
    assert e.value.code == "output.suffix"
    with pytest.raises(UserError) as e:
        load_model(tmp_path / "nowhere")
    assert e.value.code == "model.not_found"
    with pytest.raises(UserError) as e:
        load_model(preset="gigantic")
    assert e.value.code == "model.preset.unknown"


def test_progress_callback_and_cancel(pipe, tmp_path):
    seen = []
    generate(
        pipe,
        GenerationRequest("a ball", steps=3, seed=0, seconds=1.5),  # 2 segments of 8 frames, 4 shared
        tmp_path / "ok.mp4",
        callback=lambda *a: seen.append(a),
    )
    assert seen == [("denoise", 1, 6), ("denoise", 2, 6), ("denoise", 3, 6), ("decode", 1, 2),
                    ("denoise", 4, 6), ("denoise", 5, 6), ("denoise", 6, 6), ("decode", 2, 2)]  # fmt: skip

    def cancel_at(stage_name, step):
        def callback(stage, done, total):
            if stage == stage_name and done == step:
                raise GenerationCanceled

        return callback

    for stage, step in (("denoise", 2), ("decode", 2)):
        out = tmp_path / "canceled" / f"{stage}.mp4"
        out.parent.mkdir(exist_ok=True)
        with pytest.raises(GenerationCanceled):
            generate(
                pipe, GenerationRequest("a ball", steps=3, seconds=1.5), out, callback=cancel_at(stage, step)
            )
        assert list(out.parent.iterdir()) == []  # no output file, no poster, no sidecar


def test_seconds_shorter_trims_longer_extends(pipe, tmp_path):
    short = generate(pipe, GenerationRequest("a ball", steps=1, seed=0, seconds=0.5), tmp_path / "s.mp4")
    assert (
        probe(short.video)["frames"] == 4 and short.record["seconds"] == 0.5 and short.record["notes"] == []
    )
    full = generate(pipe, GenerationRequest("a ball", steps=1, seed=0, seconds=1.0), tmp_path / "f.mp4")

    def psnr(a, b):  # identical frames (the encoder may well give them): infinite, not a warning
        mse = ((a.astype(float) - b) ** 2).mean()
        return np.inf if mse == 0 else 10 * np.log10(255**2 / mse)

    # A causal prefix: the same frames, up to the H.264 encoder treating a 4- and an 8-frame file apart.
    assert psnr(read_frames(short.video), read_frames(full.video)[:4]) > 30  # dB
    # Longer than the base clip: segments continue each other; the first is the 1-s clip of the seed.
    long = generate(pipe, GenerationRequest("a ball", steps=1, seed=0, seconds=3), tmp_path / "l.mp4")
    assert probe(long.video)["frames"] == 24 and long.record["seconds"] == 3.0
    assert long.record["segments"] == 5  # 8 frames, then 4 new ones per segment
    assert psnr(read_frames(long.video)[:8], read_frames(full.video)) > 30


def test_heun_ancestral_and_fp32(trained_like, tmp_path):
    req = GenerationRequest("a red ball", steps=2, seed=3, sampler="heun")
    assert generate(trained_like, req, tmp_path / "h.mp4").record["sampler"] == "heun"
    # The stochastic sampler: its fresh noise comes from the seed, so a seed still gives one video.
    runs = [dataclasses.replace(req, sampler="ancestral", seed=s, steps=3) for s in (3, 3, 4)]
    videos = [
        read_frames(generate(trained_like, r, tmp_path / f"a{i}.mp4").video) for i, r in enumerate(runs)
    ]
    assert np.array_equal(videos[0], videos[1]) and not np.array_equal(videos[0], videos[2])
    euler_video = read_frames(generate(trained_like, dataclasses.replace(runs[0], sampler="euler"),
                                       tmp_path / "e.mp4").video)  # fmt: skip
    assert not np.array_equal(videos[0], euler_video)
    fp32 = load_model(preset="test", bf16=False)
    assert fp32.dit.patch_embed.weight.dtype == torch.float32 and fp32.model_id == trained_like.model_id


def test_saved_model_loads_back_identically(trained_like, tmp_path):
    fp32_dit = trained_like.dit.float()
    try:
        save_model(tmp_path / "model", trained_like.config, fp32_dit, trained_like.vae)
    finally:
        trained_like.dit.to(torch.bfloat16 if trained_like.bf16 else torch.float32)
    loaded = load_model(tmp_path / "model")
    assert loaded.config == trained_like.config
    assert loaded.model_id.startswith("test-")
    req = GenerationRequest("a red ball bounces", seed=5, steps=2)
    a = generate(trained_like, req, tmp_path / "a.mp4")
    b = generate(loaded, req, tmp_path / "b.mp4")
    assert np.array_equal(read_frames(a.video), read_frames(b.video))


def test_cli_one_prompt(tmp_path, capsys):
    out = tmp_path / "one.mp4"
    assert (
        main(
            [
                "generate",
                "a green star spins",
                "--preset",
                "test",
                "--steps",
                "2",
                "--seed",
                "4",
                "--cfg",
                "3",
                "--continue-cfg",
                "1.5",
                "--image-first",
                "--image-cfg",
                "2.5",
                "--seconds",
                "1",  # one segment of the test preset: the image stage runs
                "--negative",
                "red",
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    assert str(out) in capsys.readouterr().out
    record = read_record(out)
    assert (record["prompt"], record["seed"], record["cfg"], record["negative_prompt"]) == (
        "a green star spins",
        4,
        3.0,
        "red",
    )
    assert record["continue_cfg"] == 1.5
    assert record["image_first"] is True and record["image_cfg"] == 2.5


def test_cli_batch_through_the_console_script(tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text(
        'a red ball bounces\n\n# a comment\n{"prompt": "a blue square", "seed": 9, "steps": 1}\n'
        "two pink rings\n"
    )
    out = tmp_path / "batch"
    done = subprocess.run(
        [
            str(BIN),
            "generate",
            "--prompts",
            str(prompts),
            "--preset",
            "test",
            "--steps",
            "2",
            "--out",
            str(out),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    videos = sorted(out.glob("*.mp4"))
    assert [v.name.split("_")[0] for v in videos] == ["000", "001", "002"]
    records = [read_record(v) for v in videos]
    assert [r["prompt"] for r in records] == ["a red ball bounces", "a blue square", "two pink rings"]
    assert (records[1]["seed"], records[1]["steps"], records[0]["steps"]) == (9, 1, 2)
    assert len({r["model"] for r in records}) == 1


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["generate"], "give a PROMPT or --prompts"),
        (["generate", " ", "--preset", "test"], "the prompt is empty"),
        (["generate", "a ball", "--model", "/nonexistent"], "no model in /nonexistent"),
        (["generate", "--prompts", "/nonexistent.txt"], "no such prompts file"),
        (["generate", "a ball", "--preset", "test", "--steps", "0"], "steps must be"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2(args, needle, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1


def test_cli_bad_prompts_file_names_the_line(tmp_path, capsys):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"prompt": "ok"}\n{"prompt": "x", "colour": "red"}\n')
    assert main(["generate", "--prompts", str(prompts), "--preset", "test"]) == 2
    assert f"{prompts}:2: unknown keys ['colour']" in capsys.readouterr().err


def test_cli_help():
    done = subprocess.run([str(BIN), "generate", "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "--prompts" in done.stdout and "--negative" in done.stdout


def test_every_generation_carries_the_watermark_and_says_so(trained_like, tmp_path):
    from mutoscope.post import watermark

    marked = generate(trained_like, GenerationRequest("a red ball", seed=3, steps=2), tmp_path / "m.mp4")
    assert marked.record["watermark"] == watermark.record_entry()
    assert watermark.detect(read_frames(marked.video)) == watermark.PAYLOAD
    plain = generate(
        trained_like, GenerationRequest("a red ball", seed=3, steps=2, watermark=False), tmp_path / "p.mp4"
    )
    assert "watermark" not in plain.record
    assert watermark.detect(read_frames(plain.video)) is None
