"""Control inputs as extra input channels of the DiT: keyframes, camera, motion brush, static mask.

The controls are maps on the latent grid (T', H', W'), concatenated to the noisy latents (dit.py's
`cond`), all zero when a control is not used, so one model does text-to-video and every control, and
a model trained before the controls existed starts from the same function (the new input columns of
its patch embedding start at zero, `widen_patch_embed`). Channels, for C latent channels:

    [0, C)    keyframe latents (normalized), at the latent frames that are given, else 0
    C         keyframe mask: 1 at the latent frames that are given
    C+1, C+2  camera flow: where the point seen at each latent pixel in frame 0 has moved to, averaged
              over the frames of each latent frame, (dx, dy) in frame heights x FLOW_SCALE
    C+3       camera given: 1 when the camera path is a control (0: left to the prompt)
    C+4       brush: the brushed regions moved along their trajectories (coverage per latent pixel)
    C+5       static: regions that must not move

The same functions build the maps for training (from a world clip's own objects and camera, in
train/dit_task.py) and for generation (from the user's masks and paths, in segments.py), so the
model sees one format. Keyframe latents need the VAE and are filled in by the caller
(`still_latents`): a still image is encoded as `temporal_down` copies of itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from mutoscope.data.world_stream import from_model, to_model
from mutoscope.world.motion import CameraPath

EXTRA_CHANNELS = 6
FLOW_SCALE = 4.0  # frame heights -> about unit range: a 2-s preset pan moves the scene 0.4
MAX_REGIONS = 5  # as Runway's Multi Motion Brush


def cond_channels(latent_channels: int) -> int:
    return latent_channels + EXTRA_CHANNELS


@dataclass(frozen=True)
class Region:
    """A motion-brush region: a mask at the clip's resolution, in [0, 1], and its path.

    `path` is (K, 3): rows (seconds, x, y), x and y in frame units (0..1 across the width / height),
    times increasing; positions in between are linear, before the first and after the last held. The
    region moves by path(t) - path(0), where path(0) is the position at the first row's time.
    """

    mask: np.ndarray  # (H, W) float
    path: np.ndarray  # (K, 3)

    def offsets(self, times: np.ndarray) -> np.ndarray:
        """(len(times), 2) displacement in frame units at each time, relative to the clip's start."""
        p = np.asarray(self.path, np.float64)
        x = np.interp(times, p[:, 0], p[:, 1]) - np.interp(0.0, p[:, 0], p[:, 1])
        y = np.interp(times, p[:, 0], p[:, 2]) - np.interp(0.0, p[:, 0], p[:, 2])
        return np.stack([x, y], axis=-1)


def _pool(maps: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """Area-average (..., H, W) maps down to the latent grid (h, w)."""
    t = torch.from_numpy(np.ascontiguousarray(maps, dtype=np.float32))
    lead = t.shape[:-2]
    out = F.adaptive_avg_pool2d(t.reshape(-1, 1, *t.shape[-2:]), grid)
    return out.reshape(*lead, *grid).numpy()


def _chunks(frames: int, temporal_down: int) -> np.ndarray:
    """(T', temporal_down) frame indices of each latent frame."""
    if frames % temporal_down:
        raise ValueError(f"{frames} frames do not split into latent frames of {temporal_down}")
    return np.arange(frames).reshape(-1, temporal_down)


def camera_flow(
    path: CameraPath, grid: tuple[int, int], temporal_down: int, aspect: float = 1.0
) -> np.ndarray:
    """(2, T', h, w): the camera's displacement field relative to frame 0, per latent frame.

    `path` is (zoom, rotation, tx, ty) per frame (world/motion.py); `aspect` = width / height."""
    zoom, rot, tx, ty = (np.asarray(a, np.float64) for a in path)
    h, w = grid
    # Latent pixel centres in frame coordinates (frame heights; x spans the aspect), as render's grid.
    fx = (np.arange(w) + 0.5) / w * aspect + 0.5 - aspect / 2
    fy = (np.arange(h) + 0.5) / h
    fx, fy = np.meshgrid(fx, fy)

    def world_of(f: int):  # inverse camera of frame f, as render.py
        dx, dy = (fx - 0.5 - tx[f]) / zoom[f], (fy - 0.5 - ty[f]) / zoom[f]
        c, s = np.cos(rot[f]), np.sin(rot[f])
        return c * dx + s * dy + 0.5, -s * dx + c * dy + 0.5

    def frame_of(f: int, wx, wy):  # forward camera, as motion.path_to_frame
        c, s = np.cos(rot[f]), np.sin(rot[f])
        dx, dy = wx - 0.5, wy - 0.5
        return zoom[f] * (c * dx - s * dy) + 0.5 + tx[f], zoom[f] * (s * dx + c * dy) + 0.5 + ty[f]

    wx, wy = world_of(0)
    flow = np.zeros((len(zoom), 2, h, w))
    for f in range(len(zoom)):
        x, y = frame_of(f, wx, wy)
        flow[f] = (x - fx, y - fy)
    chunks = _chunks(len(zoom), temporal_down)
    return (flow[chunks].mean(axis=1).transpose(1, 0, 2, 3) * FLOW_SCALE).astype(np.float32)


CAMERA_SUMMARY = 5  # per latent frame: translation x, y, zoom, rotation, given


def camera_summary(cond: torch.Tensor, latent_channels: int) -> torch.Tensor:
    """(B, T', CAMERA_SUMMARY): the camera flow channels of cond (B, channels, T', h, w) reduced to
    the least-squares similarity transform per latent frame (translation, zoom, rotation; fixed linear
    projections, so exact for the presets) plus the given flag. The DiT embeds it per latent frame into
    its adaLN conditioning: a camera move is global, and reaching every block's modulation is a far
    shorter path than the per-pixel flow channels alone, which the model barely used (issue 4)."""
    C = latent_channels
    flow = cond[:, C + 1 : C + 3].float()  # (B, 2, T', h, w)
    h, w = flow.shape[-2:]
    py = (torch.arange(h, device=cond.device) + 0.5) / h - 0.5
    px = (torch.arange(w, device=cond.device) + 0.5) / w - 0.5
    py, px = torch.meshgrid(py, px, indexing="ij")
    r2 = (px**2 + py**2).mean()
    dx, dy = flow[:, 0], flow[:, 1]
    parts = (
        dx.mean((-2, -1)),
        dy.mean((-2, -1)),
        (dx * px + dy * py).mean((-2, -1)) / r2,
        (dy * px - dx * py).mean((-2, -1)) / r2,
        cond[:, C + 3].float().mean((-2, -1)),
    )
    return torch.stack(parts, dim=-1)


def camera_positions(cond: torch.Tensor, latent_channels: int, patch: tuple[int, int, int]) -> torch.Tensor:
    """(B, N, 3) float64 RoPE positions (t, h, w) of the DiT's tokens, anchored to the scene: a token
    of latent frame k sits where the point it sees was in frame 0, in token units, so the same point
    of a still scene keeps one position in every frame however the camera moves.

    Attention with RoPE depends on relative positions, and the model has learned from every clip
    that content at the same position in two frames is the same content. With positions fixed to
    the screen, following a camera move means learning to look for content at an offset that grows
    with time, from the flow channels, which the model barely did (issue 4). With positions fixed to
    the scene, a camera move is the still scene seen through a moving window. Where the camera is not
    a control (flow zero) the positions are the grid's own indices, as before.

    The camera flow channels of `cond` (B, channels, T', h, w), where the point at a frame-0 latent
    pixel p has moved to in latent frame k (an average over its frames), are fitted per latent frame
    by the affine map q = M p + c (least squares; exact for the similarity transforms of world/
    motion.py, which averaging keeps affine); a token at q then sits at M^-1 (q - c)."""
    C = latent_channels
    pt, ph, pw = patch
    flow = cond[:, C + 1 : C + 3].double() / FLOW_SCALE  # (B, 2, T', h, w) in frame heights
    B, _, T, h, w = flow.shape
    flow = flow.reshape(B, 2, T // pt, pt, h, w).mean(3)  # per token frame
    scale = 1.0 / h  # one latent pixel, in frame heights (square pixels)

    def centres(rows: int, cols: int, dy: float, dx: float) -> torch.Tensor:
        """(2, rows cols) (x, y) centres of a grid of cells dy x dx, about the frame's centre."""
        ys, xs = ((torch.arange(n, dtype=torch.float64, device=cond.device) - (n - 1) / 2) * d
                  for n, d in ((rows, dy), (cols, dx)))  # fmt: skip
        py, px = torch.meshgrid(ys, xs, indexing="ij")
        return torch.stack([px, py]).reshape(2, -1)

    p = centres(h, w, scale, scale)  # latent pixels; centred: its mean is 0
    q = p + flow.reshape(B, 2, T // pt, -1).transpose(1, 2)  # (B, T'', 2, h w)
    c = q.mean(-1, keepdim=True)
    M = ((q - c) @ p.T) @ torch.linalg.inv(p @ p.T)  # (B, T'', 2, 2)
    # Token centres on the same centred axes; their positions back in token indices.
    tokens = centres(h // ph, w // pw, ph * scale, pw * scale)  # (2, n)
    seen = torch.linalg.solve(M, tokens - c)  # (B, T'', 2, n): frame-0 place of what each token sees
    x = seen[:, :, 0] / (pw * scale) + (w // pw - 1) / 2
    y = seen[:, :, 1] / (ph * scale) + (h // ph - 1) / 2
    t = torch.arange(T // pt, dtype=torch.float64, device=cond.device)[None, :, None].expand_as(x)
    return torch.stack([t, y, x], dim=-1).reshape(B, -1, 3)  # tokens in (t h w) order


def _shift(planes: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """(F, C, H, W): planes (C, H, W) translated by each offset (F, 2), in frame units, bilinear,
    zero where they come from outside."""
    C, H, W = planes.shape
    n = len(offsets)
    m = torch.from_numpy(np.ascontiguousarray(planes, np.float32))[None].expand(n, C, H, W)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0
    # grid_sample reads the source at output - offset; normalized coordinates span 2 per side.
    theta[:, :, 2] = -torch.from_numpy(np.asarray(offsets, np.float32)) * 2.0
    grid = F.affine_grid(theta, (n, C, H, W), align_corners=False)
    return F.grid_sample(m, grid, mode="bilinear", padding_mode="zeros", align_corners=False).numpy()


def shift_masks(mask: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """(F, H, W): `mask` (H, W) translated by each offset (F, 2), in frame units, bilinear."""
    return _shift(np.asarray(mask)[None], offsets)[:, 0]


def _placed(regions: list[Region], at: float) -> list[np.ndarray]:
    """Each region's mask (H, W) where it is at `at` seconds."""
    return [shift_masks(r.mask, r.offsets(np.array([at])))[0] for r in regions]


def brush_origin(regions: list[Region], start: float = 0.0) -> np.ndarray:
    """(H, W): the union of the regions' masks where they are at `start` seconds."""
    return np.max(_placed(regions, start), axis=0)


def brushed_frames(image: np.ndarray, regions: list[Region], frames: int, fps: float, start: float = 0.0,
                   at: float | None = None):  # fmt: skip
    """(F, H, W, 3) float in [0, 255]: a clip of `frames` from `start` seconds made of `image`, a
    frame of the video at `at` seconds (default: `start`; its regions where they are then), with
    each region's pixels carried along its path over the background they leave (filled in from
    around them, cv2's Telea inpainting) and the rest held still: a cut-and-paste animation of what
    the brush asks. It is the target the sampler steers the brushed regions towards in the first
    steps (segments.held_regions), not a video anyone is shown."""
    import cv2

    at = start if at is None else at
    times = start + np.arange(frames) / fps
    image = np.asarray(image)
    out = np.repeat(np.asarray(image, np.float32).transpose(2, 0, 1)[None], frames, axis=0)
    placed = _placed(regions, at)
    if regions:
        origin = np.max(placed, axis=0) > 0.05
        # Filled from a ring one pixel out (the regions' soft edges are no source), kept inside only.
        hole = cv2.dilate(origin.astype(np.uint8), np.ones((3, 3), np.uint8))
        ground = cv2.inpaint(image, hole, 3, cv2.INPAINT_TELEA)
        out[:] = np.where(origin[..., None], ground, image).astype(np.float32).transpose(2, 0, 1)
    pixels = image.astype(np.float32).transpose(2, 0, 1)  # (3, H, W)
    for r, mask in zip(regions, placed, strict=True):
        moves = r.offsets(times) - r.offsets(np.array([at]))
        alpha = shift_masks(mask, moves)[:, None]  # (F, 1, H, W)
        out = out * (1 - alpha) + _shift(pixels * mask, moves)  # premultiplied: the pixels carry their mask
    return out.transpose(0, 2, 3, 1)


def brush_map(
    regions: list[Region],
    frames: int,
    fps: float,
    grid: tuple[int, int],
    temporal_down: int,
    start: float = 0.0,
) -> np.ndarray:
    """(T', h, w): the union of the regions, each moved along its path, averaged per latent frame;
    frame 0 is at `start` seconds of the video (a later segment sees its regions where they are)."""
    if len(regions) > MAX_REGIONS:
        raise ValueError(f"at most {MAX_REGIONS} motion-brush regions, got {len(regions)}")
    chunks = _chunks(frames, temporal_down)
    if not regions:
        return np.zeros((len(chunks), *grid), np.float32)
    times = start + np.arange(frames) / fps
    moved = np.max([shift_masks(r.mask, r.offsets(times)) for r in regions], axis=0)  # (F, H, W)
    return _pool(moved[chunks].mean(axis=1), grid).astype(np.float32)


@dataclass
class ControlMaps:
    """The controls of one clip on the latent grid, except the keyframe latents (they need the VAE).

    `keys` lists the latent frames given as keyframes; `stills` the images (H, W, 3) uint8 encoded as
    still chunks for them (None where the caller fills that latent frame itself, e.g. extension)."""

    camera: np.ndarray | None = None  # (2, T', h, w) from camera_flow
    brush: np.ndarray | None = None  # (T', h, w) from brush_map
    static: np.ndarray | None = None  # (h, w) coverage of the static mask

    def tensor(self, channels: int, shape: tuple[int, int, int]) -> torch.Tensor:
        """(channels, T', h, w): every map but the keyframe ones (which the caller fills)."""
        C = channels - EXTRA_CHANNELS
        out = torch.zeros(channels, *shape)
        if self.camera is not None:
            out[C + 1 : C + 3] = torch.from_numpy(self.camera)
            out[C + 3] = 1.0
        if self.brush is not None:
            out[C + 4] = torch.from_numpy(self.brush)
        if self.static is not None:
            out[C + 5] = torch.from_numpy(self.static)[None]
        return out


def set_keyframes(cond: torch.Tensor, latents: torch.Tensor, frames: list[int]) -> None:
    """Write keyframe latents (C, len(frames), h, w) into cond (channels, T', h, w) at `frames`."""
    C = cond.shape[0] - EXTRA_CHANNELS
    for j, k in enumerate(frames):
        cond[:C, k] = latents[:, j]
        cond[C, k] = 1.0


def without_motion(cond: torch.Tensor, latent_channels: int) -> torch.Tensor:
    """cond (B, channels, T', h, w) with the motion controls (camera, brush, static) switched off and
    the keyframes kept: the negative branch of guidance over the motion controls (segments.with_cond)."""
    out = cond.clone()
    out[:, latent_channels + 1 :] = 0
    return out


@torch.no_grad()
def clip_latents(vae, clip: torch.Tensor) -> torch.Tensor:
    """Normalized latents (N, C, T', h, w) of a clip (N, 3, F, H, W) in [-1, 1]."""
    mean, _ = vae.encode(clip.contiguous(memory_format=torch.channels_last_3d))
    return vae.normalize(mean.float())


@torch.no_grad()
def tail_latents(vae, z: torch.Tensor) -> torch.Tensor:
    """Normalized latents (N, C, n, h, w) as a continuation is given the frames that latents z (the
    same shape) decode to: generate() decodes a segment to uint8 frames and encodes its tail again.
    The trip is not neutral: the objects the next segment is shown cover ~7% more of the frame
    (`bench/vae_round_trip.py`; 16% with the decoder before 2026-12-07, which bled their colors), and
    a model that keeps what it is shown grows them segment by segment. Training may show it the trip
    (TrainConfig.extend_trip). z in any dtype: it is decoded in the VAE's."""
    dtype = next(vae.parameters()).dtype
    frames = from_model(vae.decode(vae.denormalize(z.to(dtype))).float().clamp(-1, 1))
    return clip_latents(vae, to_model(frames).to(dtype))


def still_latents(vae, images: torch.Tensor) -> torch.Tensor:
    """Normalized latents (N, C, h, w) of images (N, 3, H, W) in [-1, 1], each as a still chunk."""
    return clip_latents(vae, images[:, :, None].expand(-1, -1, vae.cfg.temporal_down, -1, -1))[:, :, 0]


def held_path(target: torch.Tensor, noise: torch.Tensor, region: torch.Tensor, until: float = 0.0):
    """A projection for the samplers (diffusion/sampling.py) that keeps the state inside `region`
    (broadcastable, in [0, 1]) on the straight flow path from this noise to `target`: x_t = t noise
    + (1 - t) target there, a blend at the region's soft edge, from the start down to time `until`
    (0: to the end), after which the model goes on alone. Replacement inpainting (as in Blended
    Latent Diffusion): the model generates everything else around the held region. segments.held_regions
    uses it for the static mask (held to the end on the still first frame) and the motion brush
    (its cut-and-paste animation held for the first steps, which set where things are)."""

    def project(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t = float(t)
        if t < until:
            return x
        return torch.lerp(x, t * noise + (1 - t) * target, region)

    return project


def static_map(mask: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """(h, w) coverage of a static mask (H, W) in [0, 1] on the latent grid."""
    return _pool(np.asarray(mask, np.float32), grid).astype(np.float32)
