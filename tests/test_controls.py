"""Control inputs: the maps the DiT reads (model/controls.py), the user-facing parsing
(control_inputs.py) and generate() with every control, on the tiny `test` preset."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from PIL import Image

from mutoscope.config import preset
from mutoscope.control_inputs import PRESET_AXES, load_frame, load_mask, parse_brush, parse_camera
from mutoscope.errors import UserError
from mutoscope.generate import GenerationRequest, generate, load_model
from mutoscope.model import DiT, controls
from mutoscope.post.mp4 import probe, read_frames, write_mp4
from mutoscope.world.motion import camera_from_axes, camera_params
from mutoscope.world.vocab import Camera

TIMES = np.arange(16) / 8.0


def test_preset_axes_are_the_world_presets():
    for cam in Camera:
        ours, world = camera_from_axes(PRESET_AXES[cam], TIMES), camera_params(cam, TIMES)
        for a, b in zip(ours, world, strict=True):
            np.testing.assert_allclose(a, b, atol=1e-12)


def test_camera_flow_pan_is_uniform_zoom_is_radial():
    pan = controls.camera_flow(camera_params(Camera.PAN_RIGHT, TIMES), (8, 8), 4)
    assert pan.shape == (2, 4, 8, 8)
    assert np.allclose(pan[:, 0], pan[:, 0, :1, :1], atol=1e-6)  # the same everywhere
    assert pan[0, -1].mean() < pan[0, 0].mean() < 0 and np.allclose(pan[1], 0)  # scene slides left
    zoom = controls.camera_flow(camera_params(Camera.ZOOM_IN, TIMES), (8, 8), 4)
    dx = zoom[0, -1]
    assert dx[:, 0].mean() < 0 < dx[:, -1].mean()  # points leave through the sides
    still = controls.camera_flow(camera_params(Camera.STATIC, TIMES), (8, 8), 4)
    assert np.abs(still).max() == 0


@pytest.mark.parametrize(
    ("move", "axis", "sign"),
    [(Camera.PAN_RIGHT, 0, -1), (Camera.TILT_UP, 1, 1), (Camera.ZOOM_IN, 2, 1), (Camera.ORBIT, 3, 1)],
)
def test_camera_summary_reads_each_move_on_its_own_axis(move, axis, sign):
    cond = torch.zeros(1, 10, 4, 8, 8)  # the test preset: 4 latent channels + 6
    cond[0, 5:7] = torch.from_numpy(controls.camera_flow(camera_params(move, TIMES), (8, 8), 4))
    cond[0, 7] = 1.0
    summary = controls.camera_summary(cond, 4)[0]  # (T', 5)
    assert summary.shape == (4, controls.CAMERA_SUMMARY)
    assert torch.equal(summary[:, 4], torch.ones(4))  # the given flag
    moving = summary[-1, :4]
    assert sign * moving[axis] > 0.1  # the requested axis grows...
    others = torch.cat([moving[:axis], moving[axis + 1 :]])
    # ...and it dominates (a turn's chord also draws points inwards: a third of its angle as zoom)
    assert others.abs().max() < 0.35 * moving[axis].abs()
    assert summary[0, :4].abs().max() < moving[axis].abs()  # and grows with time from frame 0


def _flow_cond(flow: np.ndarray) -> torch.Tensor:
    """A (1, 10, T', h, w) cond of the test preset (4 latent channels) with this camera flow given."""
    cond = torch.zeros(1, 10, *flow.shape[1:], dtype=torch.float64)
    cond[0, 5:7] = torch.from_numpy(flow)
    cond[0, 7] = 1.0
    return cond


def test_camera_positions_follow_the_scene():
    """Closed forms on an 8x8 latent grid with 2x2 patches (4x4 tokens, one token = 2/8 of the frame
    height): no move keeps the grid's indices; the scene sliding 2 tokens right puts every token of
    that frame 2 to the left of its index (it sees what frame 0 saw there); a 2x zoom halves every
    offset from the centre."""
    T, h = 3, 8
    still = controls.camera_positions(_flow_cond(np.zeros((2, T, h, h))), 4, (1, 2, 2))
    axes = (torch.arange(n, dtype=torch.float64) for n in (T, 4, 4))
    grid = torch.stack(torch.meshgrid(*axes, indexing="ij"), -1)  # (T, 4, 4, 3) token indices
    assert still.shape == (1, T * 16, 3) and torch.allclose(still[0], grid.reshape(-1, 3), atol=1e-9)

    slide = np.zeros((2, T, h, h))
    slide[0, 2] = 2 * (2 / h) * controls.FLOW_SCALE  # latent frame 2: 2 tokens to the right
    pos = controls.camera_positions(_flow_cond(slide), 4, (1, 2, 2))[0].reshape(T, 4, 4, 3)
    assert torch.allclose(pos[2, ..., 2], grid[2, ..., 2] - 2, atol=1e-9)
    assert torch.allclose(pos[2, ..., :2], grid[2, ..., :2], atol=1e-9)  # t and y kept
    assert torch.allclose(pos[:2], grid[:2], atol=1e-9)  # earlier frames kept

    ys = (torch.arange(h, dtype=torch.float64) + 0.5) / h - 0.5  # latent pixel centres, frame heights
    py, px = torch.meshgrid(ys, ys, indexing="ij")
    zoom = np.zeros((2, T, h, h))
    zoom[0, 1], zoom[1, 1] = px.numpy() * controls.FLOW_SCALE, py.numpy() * controls.FLOW_SCALE  # 2x
    pos = controls.camera_positions(_flow_cond(zoom), 4, (1, 2, 2))[0].reshape(T, 4, 4, 3)
    centre = 1.5
    assert torch.allclose(pos[1, ..., 1:] - centre, (grid[1, ..., 1:] - centre) / 2, atol=1e-9)


@pytest.mark.parametrize("move", [Camera.PAN_LEFT, Camera.TILT_DOWN, Camera.ZOOM_OUT, Camera.ORBIT])
def test_camera_positions_give_a_world_point_one_position(move):
    """Every world preset: the point seen at a latent pixel of the video's first frame, followed
    along the camera flow to where it is in the last latent frame, has there the position of that
    pixel (the affine fit is exact for the world's moves)."""
    h = 8
    flow = controls.camera_flow(camera_params(move, TIMES), (h, h), 4)
    pos = controls.camera_positions(_flow_cond(flow), 4, (1, 1, 1))[0].reshape(4, h, h, 3)
    iy, ix = np.meshgrid(np.arange(h), np.arange(h), indexing="ij")
    to_x = ix + flow[0, 3] / controls.FLOW_SCALE * h  # where the point is in latent frame 3, in indices
    to_y = iy + flow[1, 3] / controls.FLOW_SCALE * h
    # Latent frame 3's positions are an affine function of the index: read them off there.
    design = np.stack([ix.ravel(), iy.ravel(), np.ones(h * h)], 1)
    affine = np.linalg.lstsq(design, pos[3, ..., 1:].reshape(-1, 2).numpy(), rcond=None)[0]
    at = np.stack([to_x.ravel(), to_y.ravel(), np.ones(h * h)], 1) @ affine  # (y, x) positions there
    assert np.allclose(at, np.stack([iy.ravel(), ix.ravel()], 1), atol=1e-6)
    assert not np.allclose(pos[3, ..., 1:].numpy(), np.stack([iy, ix], -1), atol=0.1)  # and they moved


def test_guidance_drops_the_motion_controls_and_keeps_the_keyframes():
    from types import SimpleNamespace

    from mutoscope.segments import with_cond

    seen = []

    class Recorder:  # a DiT of 4 latent channels that records the controls it is given
        cfg = SimpleNamespace(in_channels=4)

        def __call__(self, x, t, text, mask, c):
            seen.append(c)
            return x

    fake = Recorder()
    cond = torch.rand(1, 10, 2, 4, 4) + 0.5
    model = with_cond(fake, cond)
    x = torch.zeros(2, 4, 2, 4, 4)
    model(x, torch.zeros(2), torch.zeros(2, 1, 8), torch.ones(2, 1, dtype=torch.bool))
    both = seen[-1]
    assert torch.equal(both[0], cond[0])  # the conditional half: every control
    assert torch.equal(both[1, :5], cond[0, :5]) and both[1, 5:].abs().max() == 0  # negative: keys only
    model(x[:1], torch.zeros(1), torch.zeros(1, 1, 8), torch.ones(1, 1, dtype=torch.bool))
    assert torch.equal(seen[-1], cond)  # no guidance: no negative half


def test_shift_masks_moves_by_frame_units():
    mask = np.zeros((32, 32), np.float32)
    mask[8:12, 4:8] = 1.0
    moved = controls.shift_masks(mask, np.array([[0.0, 0.0], [0.5, 0.25]]))
    assert np.allclose(moved[0], mask, atol=1e-6)
    ys, xs = np.nonzero(moved[1] > 0.5)
    assert (xs.min(), ys.min()) == (4 + 16, 8 + 8)


def test_brush_map_follows_the_path_and_later_segments_start_where_it_is():
    mask = np.zeros((32, 32), np.float32)
    mask[14:18, 2:6] = 1.0
    region = controls.Region(mask, np.array([[0.0, 0.1, 0.5], [2.0, 0.9, 0.5]]))
    occupancy = controls.brush_map([region], 16, 8.0, (8, 8), 4)
    cols = [np.average(np.arange(8), weights=occupancy[k].sum(0)) for k in range(4)]
    assert cols == sorted(cols) and cols[-1] - cols[0] > 4  # moves right across the frame
    later = controls.brush_map([region], 16, 8.0, (8, 8), 4, start=1.0)
    assert np.average(np.arange(8), weights=later[0].sum(0)) > cols[1]
    with pytest.raises(ValueError, match="at most 5"):
        controls.brush_map([region] * 6, 16, 8.0, (8, 8), 4)


def test_widened_dit_computes_what_the_text_only_one_did():
    cfg = preset("test").dit
    base = DiT(type(cfg)(**{**cfg.__dict__, "cond_channels": 0}))
    with torch.no_grad():
        for p in base.parameters():
            p.add_(0.05 * torch.randn_like(p))
    wide = DiT(cfg)
    wide.load_state_dict(wide.widen_state(base.state_dict()))
    x, t = torch.randn(2, 4, 2, 8, 8), torch.rand(2)
    text, mask = torch.randn(2, 5, cfg.text_dim), torch.ones(2, 5, dtype=torch.bool)
    cond = torch.randn(2, cfg.cond_channels, 2, 8, 8)
    cond[:, 5:7] = 0  # no camera flow: a camera would move the RoPE positions (cfg.camera_rope)
    with torch.no_grad():
        # equal up to rounding: the conditioning is per latent frame now, a matmul of another shape
        assert torch.allclose(base(x, t, text, mask), wide(x, t, text, mask, cond), atol=1e-6, rtol=0)


def test_a_dit_widened_to_more_latent_channels_computes_what_it_did_on_the_old_ones():
    cfg = preset("test").dit  # 4 latent channels, 10 control channels
    base = DiT(cfg)
    with torch.no_grad():
        for p in base.parameters():
            p.add_(0.05 * torch.randn_like(p))
    wide = DiT(type(cfg)(**{**cfg.__dict__, "in_channels": 8, "cond_channels": controls.cond_channels(8)}))
    wide.load_state_dict(wide.widen_state(base.state_dict()))
    x, t = torch.randn(2, 4, 2, 8, 8), torch.rand(2)
    text, mask = torch.randn(2, 5, cfg.text_dim), torch.ones(2, 5, dtype=torch.bool)
    cond = torch.randn(2, cfg.cond_channels, 2, 8, 8)
    more = torch.randn(2, 4, 2, 8, 8)  # whatever the new channels hold, of the latents and the keyframes
    wide_cond = torch.cat([cond[:, :4], more, cond[:, 4:]], 1)
    with torch.no_grad():
        v = wide(torch.cat([x, more], 1), t, text, mask, wide_cond)
        assert torch.allclose(v[:, :4], base(x, t, text, mask, cond), atol=1e-5, rtol=0)
        assert torch.equal(v[:, 4:], torch.zeros_like(v[:, 4:]))  # the new channels: zero velocity at first
    with pytest.raises(ValueError, match="cannot widen"):
        base.widen_state(wide.state_dict())


def test_images_are_center_cropped_then_resized(tmp_path):
    wide = np.zeros((40, 80, 3), np.uint8)
    wide[:, 20:60] = 255  # the centre square is white, the sides black
    assert load_frame(wide, 16, 16).min() > 200  # the sides were cropped away
    path = tmp_path / "m.png"
    Image.fromarray(np.full((10, 10), 255, np.uint8)).save(path)
    assert load_mask(path, 8, 8).shape == (8, 8) and load_mask(path, 8, 8).min() == 1.0
    for bad, code in (
        (tmp_path / "none.png", "input.mask.not_found"),
        (np.zeros((4, 4), np.uint8), "input.mask.empty"),
    ):
        with pytest.raises(UserError) as e:
            load_mask(bad, 8, 8)
        assert e.value.code == code


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("dolly_zoom", "input.camera.unknown"),
        ({"pan": 11}, "input.camera.axes"),
        ({"yaw": 1}, "input.camera.axes"),
        ([{"t": 1, "x": 0.1}, {"t": 0.5}], "input.camera.path"),
        (3, "input.camera.type"),
    ],
)
def test_bad_camera_is_a_user_error(value, code):
    with pytest.raises(UserError) as e:
        parse_camera(value)
    assert e.value.code == code


def test_camera_path_points_interpolate():
    cam = parse_camera([{"t": 2, "x": 0.2, "zoom": 1.5}])
    zoom, _, tx, _ = cam.path(np.array([0.0, 1.0, 2.0, 3.0]))
    np.testing.assert_allclose(tx, [0, 0.1, 0.2, 0.2])
    np.testing.assert_allclose(zoom, [1, 1.25, 1.5, 1.5])


def test_bad_brush_is_a_user_error():
    mask = np.ones((8, 8), np.float32)
    for regions, code in (
        ([{"mask": mask, "path": [[0, 0.5, 0.5]]}], "input.brush.path"),
        ([{"mask": mask, "path": [[1, 0.5, 0.5], [0, 0.2, 0.2]]}], "input.brush.path"),
        ([{"path": [[0, 0.5, 0.5], [1, 0.2, 0.2]]}], "input.brush.region"),
        ([{"mask": mask, "path": [[0, 0, 0], [1, 1, 1]]}] * 6, "input.brush.too_many"),
    ):
        with pytest.raises(UserError) as e:
            parse_brush(regions, 8, 8)
        assert e.value.code == code


@pytest.fixture(scope="module")
def pipe():
    return load_model(preset="test")


def test_every_control_runs_through_generate(pipe, tmp_path):
    rng = np.random.default_rng(0)
    first = rng.integers(0, 255, (50, 70, 3), dtype=np.uint8)
    mask = np.zeros((32, 32), np.float32)
    mask[10:20, 10:20] = 1
    req = GenerationRequest(
        "a red ball",
        seed=3,
        steps=2,
        seconds=1.5,
        first_frame=first,
        last_frame=first,
        camera={"pan": 4, "zoom": -2},
        brush=[{"mask": mask, "path": [[0, 0.4, 0.4], [1.5, 0.7, 0.5]]}],
        static_mask=1 - mask,
    )
    result = generate(pipe, req, tmp_path / "c.mp4")
    assert probe(result.video)["frames"] == 12 and result.record["segments"] == 2
    used = result.record["controls"]
    assert used["camera"] == {"pan": 4.0, "zoom": -2.0} and used["brush"][0]["path"][1] == [1.5, 0.7, 0.5]
    assert {"first_frame", "last_frame", "static_mask"} <= set(used)


def test_controls_change_the_video(tmp_path):
    moved = load_model(preset="test")  # weights moved off the zero init, so that the inputs matter
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for w in moved.dit.parameters():
            w.add_((0.05 * torch.randn(w.shape, generator=g)).to(w.dtype))

    def frames(name, **kw):
        generate(moved, GenerationRequest("a ball", seed=1, steps=2, seconds=1, **kw), tmp_path / name)
        return read_frames(tmp_path / name).astype(int)

    plain = frames("a.mp4")
    assert np.array_equal(plain, frames("a2.mp4"))
    assert np.abs(plain - frames("b.mp4", camera="pan_left")).mean() > 0.5
    assert np.abs(plain - frames("c.mp4", first_frame=np.zeros((32, 32, 3), np.uint8))).mean() > 0.5


def test_brushed_frames_carry_the_region_along_its_path_over_the_background_it_leaves():
    image = np.full((32, 32, 3), 40, np.uint8)
    image[14:18, 2:6] = 250  # a bright square on a dark ground
    mask = (image[..., 0] > 100).astype(np.float32)
    region = controls.Region(mask, np.array([[0.0, 0.125, 0.5], [1.0, 0.625, 0.5]]))  # 16 px right
    frames = controls.brushed_frames(image, [region], 8, 8.0)
    assert frames.shape == (8, 32, 32, 3)
    np.testing.assert_allclose(frames[0], image, atol=1)
    last = np.interp(7 / 8, [0, 1], [0, 16])  # 14 px at frame 7
    ys, xs = np.nonzero(frames[-1][..., 0] > 145)
    assert abs(xs.mean() - (3.5 + last)) < 0.6 and abs(ys.mean() - 15.5) < 0.6
    assert np.abs(frames[-1][14:18, 2:6] - 40).max() < 3  # the ground where it was, filled in
    still = controls.brushed_frames(image, [], 4, 8.0)
    assert np.array_equal(still, np.repeat(image[None].astype(np.float32), 4, axis=0))
    # A frame from later in the video (an extension's last): the region is where it is then.
    later = controls.brushed_frames(frames[-1].astype(np.uint8), [region], 8, 8.0, start=0.5, at=7 / 8)
    ys, xs = np.nonzero(later[0][..., 0] > 145)  # at 0.5 s: 8 px right of the start
    assert abs(xs.mean() - (3.5 + 8)) < 0.6
    ys, xs = np.nonzero(later[-1][..., 0] > 145)  # held after the path's end at 1 s: 16 px
    assert abs(xs.mean() - (3.5 + 16)) < 0.6


def _plan(cfg, **kw):
    from mutoscope.request import Plan

    return Plan(seed=0, steps=2, cfg=1.0, sampler="euler", frames=cfg.frames, segments=["a"], fps=cfg.fps,
                size=(cfg.width, cfg.height), **kw)  # fmt: skip


def test_the_static_region_is_held_to_the_end_on_the_still_first_frame(pipe):
    from mutoscope.segments import held_regions, model_frames, segment_maps

    cfg = pipe.config
    C, T, h, w = pipe.vae.latent_shape(cfg.frames, cfg.height, cfg.width)
    first = np.random.default_rng(1).integers(0, 255, (cfg.height, cfg.width, 3), dtype=np.uint8)
    static = np.zeros((cfg.height, cfg.width), np.float32)
    static[: cfg.height // 2] = 1  # the top half: whole latent rows
    plan = _plan(cfg, static=static)
    noise = torch.randn(1, C, T, h, w)
    hold = held_regions(pipe, plan, segment_maps(pipe, plan, 0), first, noise, 0.0, 0.0)
    x = torch.randn(1, C, T, h, w)
    held = hold(x, torch.tensor(0.0))
    clip = model_frames(np.repeat(first[None], cfg.frames, axis=0), next(pipe.vae.parameters()))
    still = controls.clip_latents(pipe.vae, clip[None])
    assert torch.allclose(held[..., : h // 2, :], still[..., : h // 2, :], atol=1e-6)
    assert torch.equal(held[..., h // 2 :, :], x[..., h // 2 :, :])
    assert torch.allclose(hold(noise, torch.tensor(1.0)), noise)  # the path starts at the noise
    assert (
        held_regions(pipe, plan, segment_maps(pipe, plan, 0), None, noise, 0.0, 0.0) is None
    )  # no first frame: the trained channel alone
    off = dataclasses.replace(plan, hold=False)
    assert held_regions(pipe, off, segment_maps(pipe, off, 0), first, noise, 0.0, 0.0) is None


def test_brushed_regions_are_held_only_in_the_first_steps(pipe):
    from mutoscope.segments import BRUSH_HOLD_UNTIL, held_regions, segment_maps

    cfg = pipe.config
    C, T, h, w = pipe.vae.latent_shape(cfg.frames, cfg.height, cfg.width)
    first = np.full((cfg.height, cfg.width, 3), 60, np.uint8)
    mask = np.zeros((cfg.height, cfg.width), np.float32)
    mask[:8, :8] = 1
    region = controls.Region(mask, np.array([[0.0, 0.1, 0.1], [1.0, 0.6, 0.6]]))
    noise = torch.zeros(1, C, T, h, w)
    plan = _plan(cfg, brush=[region])
    hold = held_regions(pipe, plan, segment_maps(pipe, plan, 0), first, noise, 0.0, 0.0)
    x = torch.full((1, C, T, h, w), 7.0)
    early = hold(x, torch.tensor(1.0))  # on the path at t = 1: the noise (zero) where held
    assert early[0, 0, 0, 0, 0] == 0 and early[0, 0, 0, -1, -1] == 7  # the region held, the rest free
    assert early[0, 0, -1, 0, 0] == 0  # where it was, held too (to the ground it leaves)
    assert torch.equal(hold(x, torch.tensor(BRUSH_HOLD_UNTIL / 2)), x)  # let go near the end


def test_a_continuing_segment_holds_the_ground_the_region_leaves_in_its_known_frame(pipe):
    from mutoscope.segments import held_regions, segment_maps

    cfg = pipe.config
    C, T, h, w = pipe.vae.latent_shape(cfg.frames, cfg.height, cfg.width)
    mask = np.zeros((cfg.height, cfg.width), np.float32)
    mask[:8, :8] = 1  # centred at (0.125, 0.125)
    # Still until 0.5 s, across to the far corner by 0.875 s (the tail's last frame), then still.
    path = np.array([[0.0, 0.125, 0.125], [0.5, 0.125, 0.125], [0.875, 0.875, 0.875], [9.0, 0.875, 0.875]])
    region = controls.Region(mask, path)
    noise = torch.zeros(1, C, T, h, w)
    tail_last = np.full((cfg.height, cfg.width, 3), 60, np.uint8)
    plan = _plan(cfg, brush=[region])
    hold = held_regions(pipe, plan, segment_maps(pipe, plan, 4), tail_last, noise, 0.5, 0.875)
    held = hold(torch.full((1, C, T, h, w), 7.0), torch.tensor(1.0))
    assert held[0, 0, -1, -1, -1] == 0  # where it is in the known frame: its hole there, held
    assert held[0, 0, -1, 0, 0] == 7  # where it was at the segment's start, gone by then: free


def test_generate_records_whether_the_regions_were_held(pipe, tmp_path):
    mask = np.zeros((32, 32), np.float32)
    mask[:16] = 1
    req = dict(prompt="a ball", seed=0, steps=1, seconds=1, static_mask=mask)
    first = np.full((32, 32, 3), 90, np.uint8)
    held = generate(pipe, GenerationRequest(**req, first_frame=first), tmp_path / "h.mp4")
    plain = generate(pipe, GenerationRequest(**req), tmp_path / "p.mp4")
    off = generate(pipe, GenerationRequest(**req, first_frame=first, hold=False), tmp_path / "o.mp4")
    assert held.record["controls"]["held_in_sampler"] is True
    assert plain.record["controls"]["held_in_sampler"] is False  # no first frame to hold on
    assert off.record["controls"]["held_in_sampler"] is False
    assert not np.array_equal(read_frames(held.video), read_frames(off.video))


def test_extend_continues_a_video_and_loop_rounds_to_segments(pipe, tmp_path):
    src = tmp_path / "src.mp4"
    write_mp4(src, np.random.default_rng(0).integers(0, 255, (8, 32, 32, 3), dtype=np.uint8), 8.0)
    ext = generate(
        pipe, GenerationRequest("a ball", seed=0, steps=1, seconds=1, extend=src), tmp_path / "e.mp4"
    )
    assert probe(ext.video)["frames"] == 8 and ext.record["controls"]["extend"] == "src.mp4"
    assert ext.record["segments"] == 2  # 4 new frames per continuing segment
    loop = generate(
        pipe, GenerationRequest("a ball", seed=0, steps=1, seconds=1.3, loop=True), tmp_path / "l.mp4"
    )
    assert probe(loop.video)["frames"] == 12 and "rounded" in loop.record["notes"][0]


def test_storyboard_gives_each_segment_its_prompt(pipe, tmp_path):
    board = [{"prompt": "a red ball", "seconds": 1}, {"prompt": "a blue star", "seconds": 1}]
    result = generate(pipe, GenerationRequest("x", seed=0, steps=1, storyboard=board), tmp_path / "s.mp4")
    assert probe(result.video)["frames"] == 16 and result.record["controls"]["storyboard"] == board


@pytest.mark.parametrize(
    ("kw", "code"),
    [
        ({"first_frame": "/nowhere.png"}, "input.first_frame.not_found"),
        ({"loop": True, "last_frame": np.zeros((8, 8, 3), np.uint8)}, "input.loop.conflict"),
        ({"extend": "/nowhere.mp4"}, "input.extend.not_found"),
        ({"fps": 4}, "input.fps.invalid"),
        ({"size": "4000x10"}, "input.size.invalid"),
        ({"size": "big"}, "input.size.invalid"),
        ({"storyboard": [{"prompt": "", "seconds": 1}]}, "input.storyboard.shot"),
        ({"seconds": 10_000}, "input.seconds.invalid"),
    ],
)
def test_bad_controls_write_nothing(pipe, tmp_path, kw, code):
    with pytest.raises(UserError) as e:
        generate(pipe, GenerationRequest("a ball", steps=1, **kw), tmp_path / "x.mp4")
    assert e.value.code == code
    assert list(tmp_path.iterdir()) == []


def test_a_text_only_model_refuses_controls(tmp_path):
    text_only = load_model(preset="test")
    text_only.config = type(text_only.config)(
        **{
            **text_only.config.__dict__,
            "dit": type(text_only.config.dit)(**{**text_only.config.dit.__dict__, "cond_channels": 0}),
        }
    )
    with pytest.raises(UserError) as e:
        generate(text_only, GenerationRequest("a ball", camera="pan_left"), tmp_path / "x.mp4")
    assert e.value.code == "model.controls.unsupported"
    with pytest.raises(UserError) as e:  # the image stage hands its frame on as a keyframe
        generate(text_only, GenerationRequest("a ball", seconds=1, image_first=True), tmp_path / "x.mp4")
    assert e.value.code == "model.controls.unsupported" and list(tmp_path.iterdir()) == []


def test_cli_controls(tmp_path, capsys):
    from mutoscope.cli import main

    mask = tmp_path / "mask.png"
    Image.fromarray(np.pad(np.full((8, 8), 255, np.uint8), 12)).save(mask)
    board = tmp_path / "board.json"
    board.write_text(
        json.dumps([{"prompt": "a red ball", "seconds": 1}, {"prompt": "a star", "seconds": 0.5}])
    )
    out = tmp_path / "v.mp4"
    args = ["generate", "--preset", "test", "--steps", "1", "--seed", "2", "--quiet", "--out", str(out),
            "--camera", '{"zoom": 3}', "--brush", str(mask), "[[0, 0.5, 0.5], [1, 0.8, 0.5]]",
            "--storyboard", str(board)]  # fmt: skip
    assert main(args) == 0
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["controls"]["camera"] == {"zoom": 3.0} and len(record["controls"]["brush"]) == 1
    assert probe(out)["frames"] == 12
    assert (
        main(["generate", "a ball", "--preset", "test", "--camera", "{bad", "--out", str(tmp_path / "b.mp4")])
        == 2
    )
    assert "--camera: not valid JSON" in capsys.readouterr().err


def test_keyframes_are_anchored_exactly_unless_asked_not_to(pipe, tmp_path):
    from mutoscope.eval.controls import keyframe_cases, psnr
    from mutoscope.world.render import render

    clip = render(keyframe_cases(1)[0].spec, 32, 32)  # smooth world frames (noise would not survive H.264)
    first, last = clip[0], clip[-1]
    req = dict(prompt="a ball", seed=0, steps=1, seconds=1, first_frame=first, last_frame=last)
    anchored = read_frames(generate(pipe, GenerationRequest(**req), tmp_path / "a.mp4").video)
    # As close as H.264 keeps the keyframes themselves (4:2:0 chroma costs a 32x32 frame ~27 dB).
    write_mp4(tmp_path / "truth.mp4", clip, 8.0)
    codec = read_frames(tmp_path / "truth.mp4")
    assert psnr(anchored[0], first) > psnr(codec[0], first) - 1
    assert psnr(anchored[-1], last) > psnr(codec[-1], last) - 1
    raw = read_frames(generate(pipe, GenerationRequest(**req, anchor=False), tmp_path / "r.mp4").video)
    assert psnr(raw[0], first) < psnr(codec[0], first) - 5  # an untrained model does not reach it alone


def test_a_keyframe_can_be_a_frame_of_an_earlier_video(tmp_path):
    clip = np.zeros((5, 16, 16, 3), np.uint8)
    clip[3] = 200
    write_mp4(tmp_path / "v.mp4", clip, 8.0)
    assert load_frame(f"{tmp_path / 'v.mp4'}#3", 16, 16).mean() > 150
    assert load_frame(tmp_path / "v.mp4", 16, 16).mean() < 50  # the last frame by default
    with pytest.raises(UserError) as e:
        load_frame(f"{tmp_path / 'v.mp4'}#9", 16, 16)
    assert e.value.code == "input.image.frame"


def test_30_fps_and_upscaled_sizes_through_generate(pipe, tmp_path):
    result = generate(
        pipe,
        GenerationRequest("a ball", seed=0, steps=1, seconds=1, fps=30, size="96x64"),
        tmp_path / "h.mp4",
    )
    info = probe(result.video)
    assert (info["frames"], info["fps"], info["width"], info["height"]) == (30, 30.0, 96, 64)
    assert result.record["base"] == {"width": 32, "height": 32, "fps": 8.0, "frames": 8}
    assert {"interpolate_s", "upscale_s", "mark_s", "encode_s"} <= set(result.timings)
    assert all(v >= 0 for v in result.timings.values())


def test_a_loop_longer_than_a_segment_conditions_its_last_segment_on_the_first_frame(pipe, tmp_path):
    from mutoscope.request import check_request
    from mutoscope.segments import segment_cond, segment_maps

    first = np.zeros((32, 32, 3), np.uint8)
    plan = check_request(
        pipe, GenerationRequest("a ball", seconds=1.5, loop=True, first_frame=first), tmp_path / "x.mp4"
    )
    assert len(plan.segments) == 2 and plan.end is plan.first
    C = pipe.config.vae.latent_channels
    last = segment_cond(pipe, plan, 1, segment_maps(pipe, plan, 4), np.zeros((4, 32, 32, 3), np.uint8), None)
    assert last[0, C, -1].min() == 1.0  # the end keyframe's mask is set in the last segment


def test_training_shows_a_continuation_the_latents_generation_gives_it(pipe):
    """controls.tail_latents, what an extension sample is given in training, is what segment_cond gives
    a continuing segment for the frames the latents decode to: the trip through uint8 frames, which
    changes them (the decoder's error), not the latents as they were."""
    from mutoscope.data.world_stream import from_model
    from mutoscope.segments import segment_cond, segment_maps

    cfg, vae = pipe.config, pipe.vae
    C, _, h, w = vae.latent_shape(cfg.frames, cfg.height, cfg.width)
    z = torch.randn(2, C, 1, h, w, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        decoded = vae.decode(vae.denormalize(z.to(next(vae.parameters()).dtype)))  # bf16 on bf16 hosts
        tails = from_model(decoded.float().clamp(-1, 1))  # (2, 4, H, W, 3) uint8
    trip = controls.tail_latents(vae, z)
    plan = _plan(cfg)
    for b in range(2):
        cond = segment_cond(pipe, plan, 1, segment_maps(pipe, plan, 12), tails[b].numpy(), None)
        assert cond[0, C, 0].min() == 1.0 and cond[0, C, 1:].max() == 0.0
        assert torch.allclose(cond[0, :C, :1], trip[b], atol=1e-5)
    assert (trip - z).abs().mean() > 0.05


def test_camera_measure_reads_the_requested_move_and_how_much_of_it():
    from dataclasses import replace

    from mutoscope.eval.controls import camera_cases, camera_recovered
    from mutoscope.world.render import render

    case, move = camera_cases(2)[1]  # a still scene; the second move of the cycle
    moved = render(replace(case.spec, camera=move))
    ok, consistency, rate = camera_recovered(moved, 8.0, move)
    assert ok and 0.7 < rate < 1.3 and consistency > 50
    still_ok, _, still_rate = camera_recovered(render(case.spec), 8.0, move)
    assert not still_ok and abs(still_rate) < 0.2


def test_a_continuation_given_two_latent_frames_repeats_eight_and_adds_eight(tmp_path):
    from mutoscope.request import check_request
    from mutoscope.segments import segment_cond, segment_maps

    tiny = load_model(preset="tiny")  # 16 frames: 4 latent frames, so a context of 2 leaves 2 to make
    C = tiny.config.vae.latent_channels
    req = GenerationRequest("a ball", seed=0, steps=1, seconds=4, context=2)
    plan = check_request(tiny, req, tmp_path / "x.mp4")
    assert plan.overlap == 8 and len(plan.segments) == 3  # 16 + 8 + 8 frames
    cond = segment_cond(tiny, plan, 1, segment_maps(tiny, plan, 8), np.zeros((8, 64, 64, 3), np.uint8), None)
    assert cond[0, C, :2].min() == 1.0 and cond[0, C, 2:].max() == 0.0  # the tail's two latent frames
    result = generate(tiny, req, tmp_path / "c.mp4")
    assert probe(result.video)["frames"] == 32 and result.record["context"] == 2
    one = check_request(tiny, dataclasses.replace(req, context=None), tmp_path / "x.mp4")
    assert one.overlap == 4 and len(one.segments) == 3  # the model's default: 16 + 12 + 4 (12 cut)
    with pytest.raises(UserError, match="context must be") as err:
        check_request(tiny, dataclasses.replace(req, context=4), tmp_path / "x.mp4")
    assert err.value.code == "input.context.invalid"


def _prompt_driven_pipe():
    """The test model with its zero-initialised gates and head made random: the prompt now matters."""
    pipe = load_model(preset="test")
    with torch.no_grad():
        for p in pipe.dit.parameters():
            if not p.abs().any():
                p.normal_(0.0, 0.05)
    return pipe


def _spied(dit, monkeypatch) -> list:
    """Every forward of `dit` from now on, as (x, t, cond, v)."""
    calls = []
    forward = dit.forward

    def spy(x, t, text, mask, cond=None):
        v = forward(x, t, text, mask, cond)
        calls.append((x, t, cond, v))
        return v

    monkeypatch.setattr(dit, "forward", spy)
    return calls


def test_segments_from_known_frames_take_their_own_guidance_scale(tmp_path):
    from mutoscope.request import check_request
    from mutoscope.segments import base_frames

    pipe = _prompt_driven_pipe()
    req = GenerationRequest("a ball", seed=3, steps=2, seconds=1.5, cfg=6.0)

    def chunks(**kw) -> list[np.ndarray]:  # the frames as made, before the encoder
        plan = check_request(pipe, dataclasses.replace(req, **kw), tmp_path / "x.mp4")
        return list(base_frames(pipe, plan, {}, lambda *a: None))

    same, apart = chunks(), chunks(continue_cfg=1.0)
    assert len(same) == len(apart) == 2  # a first segment and one that continues it
    assert np.array_equal(same[0], apart[0])  # the same guidance, the same frames
    assert not np.array_equal(same[1], apart[1])
    # Image-to-video: the first segment starts from a known frame too, so it takes continue_cfg.
    still = np.full((pipe.config.height, pipe.config.width, 3), 90, np.uint8)
    keyed, keyed_apart = chunks(first_frame=still), chunks(first_frame=still, continue_cfg=1.0)
    assert not np.array_equal(keyed[0], keyed_apart[0])
    assert generate(pipe, req, tmp_path / "r.mp4").record["continue_cfg"] == 6.0  # None: the cfg
    with pytest.raises(UserError) as err:
        generate(pipe, dataclasses.replace(req, continue_cfg=-1.0), tmp_path / "bad.mp4")
    assert err.value.code == "input.continue_cfg.invalid" and not (tmp_path / "bad.mp4").exists()


def test_image_first_draws_the_first_latent_frame_alone_then_the_segment_from_it(tmp_path, monkeypatch):
    """Text-to-image, then image-to-video: a one-segment video's first latent frame is sampled by itself
    (guided at cfg), then given to the whole segment as a continuation's first latent frame (guided at
    continue_cfg). A video from a keyframe, with a camera move, or longer than a segment has no image
    stage."""
    from mutoscope.diffusion.flow import time_grid

    pipe = _prompt_driven_pipe()
    C = pipe.config.vae.latent_channels
    Tz = pipe.vae.latent_shape(pipe.config.frames, pipe.config.height, pipe.config.width)[1]
    calls = _spied(pipe.dit, monkeypatch)
    seen = []
    req = GenerationRequest("a ball", seed=3, steps=2, seconds=1, cfg=6.0, continue_cfg=1.0, image_first=True)
    result = generate(pipe, req, tmp_path / "i.mp4", callback=lambda *a: seen.append(a))
    assert result.record["image_first"] is True
    assert [a for a in seen if a[0] == "denoise"] == [("denoise", d, 4) for d in range(1, 5)]  # 2 + 2
    # The image stage: one latent frame, guided (a batch of 2); then the segment unguided (batch 1).
    made = [(c[0].shape[0], c[0].shape[2]) for c in calls]
    assert made == [(2, 1), (2, 1), (1, Tz), (1, Tz)]
    x, t, _, v = calls[1]  # the image stage's last Euler step, to t = 0
    v_cond, v_neg = v.chunk(2)
    image = x[:1] - t[0] * (v_neg + 6.0 * (v_cond - v_neg))
    assert time_grid(2, pipe.sample.shift)[-1] == 0
    first_segment = calls[2][2][0]
    assert torch.allclose(first_segment[:C, 0], image[0, :, 0], atol=1e-5)
    assert first_segment[C, 0].min() == 1 and first_segment[C, 1:].max() == 0  # known: latent frame 0
    # Without it, the first segment is drawn from the prompt alone, at cfg.
    calls.clear()
    plain = generate(pipe, dataclasses.replace(req, image_first=False), tmp_path / "p.mp4")
    assert plain.record["image_first"] is False
    assert [c[0].shape[0] for c in calls][:2] == [2, 2] and calls[0][2][0, C].max() == 0
    # From a keyframe there is nothing to draw first; a camera move keeps the guidance that pushes it;
    # a longer video keeps its first segment's objects as drawn at once.
    still = np.full((pipe.config.height, pipe.config.width, 3), 90, np.uint8)
    changes = {"k": {"first_frame": still}, "c": {"camera": "pan_left"}, "l": {"seconds": 1.5}}
    for name, change in changes.items():
        calls.clear()
        generate(pipe, dataclasses.replace(req, **change), tmp_path / f"{name}.mp4")
        assert all(c[0].shape[2] == Tz for c in calls)
    assert [c[0].shape[0] for c in calls][:2] == [2, 2]  # a first segment of two, guided at cfg
    with pytest.raises(UserError) as err:
        generate(pipe, dataclasses.replace(req, image_first="yes"), tmp_path / "bad.mp4")
    assert err.value.code == "input.image_first.invalid" and not (tmp_path / "bad.mp4").exists()


def test_the_image_stage_runs_on_its_own_dit_at_its_own_guidance(tmp_path, monkeypatch):
    """A model directory's image.safetensors (a DiT trained on text-to-image samples alone, exported
    with `train export --image-run`) samples the image stage, at image_cfg; the video DiT the
    segment, at continue_cfg. Both files go into the model id."""
    from mutoscope.diffusion.flow import time_grid
    from mutoscope.pipeline import save_model
    from mutoscope.train.export import export

    base = load_model(preset="test")
    video_dir = save_model(tmp_path / "video", base.config, base.dit, base.vae)
    image_src = tmp_path / "image_src"
    torch.manual_seed(5)
    image_dit = DiT(base.config.dit)
    with torch.no_grad():
        for p in image_dit.parameters():
            p.normal_(0.0, 0.05)  # unlike the video DiT's zero-initialised gates: its own weights
    save_model(image_src, base.config, image_dit, base.vae)
    both = export(tmp_path / "both", dit_run=video_dir, image_run=image_src)
    with pytest.raises(ValueError, match="beside a video DiT"):
        export(tmp_path / "none", image_run=image_src)
    pipe, plain = load_model(both), load_model(video_dir)
    assert pipe.image_dit is not None and plain.image_dit is None and plain.image_model is plain.dit
    assert pipe.model_id != plain.model_id == load_model(video_dir).model_id
    calls = []

    def spy(name, module):
        forward = module.forward

        def wrapped(x, t, text, mask, cond=None):
            v = forward(x, t, text, mask, cond)
            calls.append((name, x, t, v, cond))
            return v

        monkeypatch.setattr(module, "forward", wrapped)

    spy("image", pipe.image_dit)
    spy("video", pipe.dit)
    req = GenerationRequest("a ball", seed=3, steps=2, seconds=1, cfg=6.0, continue_cfg=1.0, image_first=True,
                            image_cfg=2.5)  # fmt: skip
    result = generate(pipe, req, tmp_path / "i.mp4")
    assert result.record["image_cfg"] == 2.5 and result.record["model"] == pipe.model_id
    Tz = pipe.vae.latent_shape(pipe.config.frames, pipe.config.height, pipe.config.width)[1]
    assert [(c[0], c[1].shape[0], c[1].shape[2]) for c in calls] == [
        ("image", 2, 1), ("image", 2, 1), ("video", 1, Tz), ("video", 1, Tz)
    ]  # fmt: skip
    _, x, t, v, _ = calls[1]  # the image stage's last step, to t = 0, guided at image_cfg
    v_cond, v_neg = v.chunk(2)
    assert time_grid(2, pipe.sample.shift)[-1] == 0
    assert v_cond.abs().sum() > 0  # the image DiT's own weights, not the video DiT's zero head
    image = x[:1] - t[0] * (v_neg + 2.5 * (v_cond - v_neg))
    handed = calls[2][4][0, : base.config.vae.latent_channels, 0]  # the segment's keyframe latent 0
    assert torch.allclose(handed, image[0, :, 0], atol=1e-5)
    assert not torch.allclose(handed, (x[:1] - t[0] * (v_neg + 6.0 * (v_cond - v_neg)))[0, :, 0], atol=1e-3)
    # Without an image stage there is no image guidance to record; a bad one is refused.
    plain_run = generate(pipe, dataclasses.replace(req, image_first=False), tmp_path / "p.mp4")
    assert plain_run.record["image_cfg"] is None
    with pytest.raises(UserError) as err:
        generate(pipe, dataclasses.replace(req, image_cfg=-1.0), tmp_path / "bad.mp4")
    assert err.value.code == "input.image_cfg.invalid" and not (tmp_path / "bad.mp4").exists()


def test_the_image_stage_keeps_the_candidate_the_prompt_explains_best(tmp_path, monkeypatch):
    """SampleConfig.image_candidates n: n first latent frames drawn in one batch (the first from the
    noise a single draw takes), each asked how well the prompt explains it (diffusion/rerank.py), the
    best handed to the segment."""
    from mutoscope.diffusion import rerank

    pipe = _prompt_driven_pipe()
    C = pipe.config.vae.latent_channels
    calls = _spied(pipe.dit, monkeypatch)
    asked = []
    evidence = rerank.prompt_evidence

    def told(*args, **kw):
        asked.append(evidence(*args, **kw))
        return asked[-1]

    monkeypatch.setattr("mutoscope.segments.prompt_evidence", told)
    req = GenerationRequest("a ball", seed=3, steps=2, seconds=1, cfg=6.0, continue_cfg=1.0, image_first=True)
    generate(pipe, req, tmp_path / "one.mp4")
    single = calls[2][2][0, :C, 0]  # the keyframe latent handed to the segment
    assert not asked
    calls.clear()
    pipe.sample = dataclasses.replace(pipe.sample, image_candidates=3)
    assert generate(pipe, req, tmp_path / "three.mp4").record["image_candidates"] == 3
    k = len(rerank.EVIDENCE_TIMES)
    assert [c[0].shape[0] for c in calls] == [6, 6, 2 * 3 * k, 1, 1]  # 3 guided, then asked, then the video
    x, t, _, v = calls[1]
    v_cond, v_neg = v.chunk(2)
    candidates = x[:3] - t[0] * (v_neg + 6.0 * (v_cond - v_neg))  # the image stage's last Euler step
    assert torch.allclose(candidates[0, :, 0], single, atol=1e-5)  # the first: a single draw's
    (scores,) = asked
    handed = calls[3][2][0, :C, 0]
    assert torch.allclose(handed, candidates[int(scores.argmax())][:, 0], atol=1e-5)
    pipe.sample = dataclasses.replace(pipe.sample, image_candidates=0)  # a model directory's mistake
    with pytest.raises(UserError) as err:
        generate(pipe, req, tmp_path / "bad.mp4")
    assert err.value.code == "model.sample.invalid" and not (tmp_path / "bad.mp4").exists()


def test_a_segment_from_a_first_keyframe_starts_from_it_repeated_and_noised(tmp_path, monkeypatch):
    """With known_start t0 < 1 the segment from a given first keyframe starts at t0 from that latent
    frame repeated over the segment (blended into the last keyframe's where one is given), noised on
    the straight path, its time grid scaled to [t0, 0]; a continuation, a segment without a keyframe
    or from the image stage's frame, one with a camera move, or t0 = 1: from noise at t = 1."""
    from mutoscope.diffusion.flow import time_grid

    pipe = _prompt_driven_pipe()
    C = pipe.config.vae.latent_channels
    calls = _spied(pipe.dit, monkeypatch)
    still = np.full((pipe.config.height, pipe.config.width, 3), 90, np.uint8)
    req = GenerationRequest(
        "a ball", seed=3, steps=2, seconds=1.5, cfg=1.0, first_frame=still, known_start=0.6
    )
    record = generate(pipe, req, tmp_path / "k.mp4").record
    assert record["known_start"] == 0.6
    assert len(calls) == 4  # two segments of two steps, unguided: one forward a step
    from_noise = time_grid(2, pipe.sample.shift)
    x, t, cond, _ = calls[0]  # the keyframe's segment, first step
    assert torch.allclose(t, torch.tensor([0.6 * from_noise[0].item()]))
    assert torch.allclose(calls[1][1], torch.tensor([0.6 * from_noise[1].item()]))
    known = cond[0, :C, 0]  # the keyframe's latents
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(3))  # the segment's draw
    assert torch.allclose(x, 0.4 * known[None, :, None] + 0.6 * noise, atol=1e-5)
    assert calls[2][1].item() == from_noise[0].item() == 1.0  # the continuation: from noise
    # With a last keyframe as well (one segment), from the first blended into the last.
    calls.clear()
    end = np.full_like(still, 200)
    generate(pipe, dataclasses.replace(req, seconds=1, last_frame=end), tmp_path / "e.mp4")
    x, _, cond, _ = calls[0]
    w = torch.linspace(0, 1, x.shape[2])[:, None, None]
    blend = (1 - w) * cond[0, :C, :1] + w * cond[0, :C, -1:]
    assert torch.allclose(x[0], 0.4 * blend + 0.6 * noise[0], atol=1e-5)
    # From noise: no keyframe, the image stage's frame (drawn, not given), a camera move, or t0 = 1.
    changes = {
        "t": {"first_frame": None},
        "i": {"first_frame": None, "image_first": True},
        "c": {"camera": "pan_left"},
        "d": {"known_start": None},
    }
    for name, change in changes.items():
        calls.clear()
        plain = generate(pipe, dataclasses.replace(req, seconds=1, **change), tmp_path / f"{name}.mp4")
        segment = [c for c in calls if c[0].shape[2] > 1]  # not the image stage's one latent frame
        assert len(segment) == 2 and segment[0][1].item() == 1.0
        assert len(calls) == (4 if name == "i" else 2)
        assert plain.record["known_start"] == (0.6 if name != "d" else 1.0)
    for bad in (0.0, 1.5, True):
        with pytest.raises(UserError) as err:
            generate(pipe, dataclasses.replace(req, known_start=bad), tmp_path / "bad.mp4")
        assert err.value.code == "input.known_start.invalid" and not (tmp_path / "bad.mp4").exists()
