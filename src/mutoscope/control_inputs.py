"""What a user gives as controls, checked and brought to the model's frame: images, camera, brush.

Everything here turns user input (file paths, arrays, JSON-like dicts from the CLI or the API) into
the plain values model/controls.py builds maps from, or raises UserError with a dotted code. Nothing
here knows about latents.

- Images (keyframes, brush masks, the static mask): a PNG / JPEG path or an (H, W, 3) / (H, W) array
  of any size; for a keyframe also a frame of an earlier video, `clip.mp4` (its last frame) or
  `clip.mp4#12` (frame 12). They are center-cropped to the model's aspect ratio, then resized to the model's
  frame (Lanczos for pictures, area averaging for masks), so nothing is stretched.
- Camera: a preset name ("pan_left", "zoom_in", ... as the world's Camera), Kling-style axes
  {"horizontal", "vertical", "pan", "tilt", "roll", "zoom"} each in [-10, 10], or a path: a list of
  points {"t": seconds, "x": .., "y": .., "zoom": .., "roll": ..} (x, y: the frame's offset in
  frame heights, zoom a factor, roll radians), linear in between and held after the last.
- Motion brush: up to 5 regions {"mask": image, "path": [[seconds, x, y], ...]}, x and y in frame
  units (0..1 across the width and the height).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mutoscope.errors import UserError
from mutoscope.model.controls import MAX_REGIONS, Region
from mutoscope.world.motion import CAMERA_AXES, CameraPath, camera_from_axes
from mutoscope.world.vocab import Camera

Image = str | Path | np.ndarray


def _video_frame(spec: str, code: str) -> np.ndarray:
    """Frame N of `path.mp4#N` (the last without #N)."""
    from mutoscope.post.mp4 import read_frames

    path, _, index = spec.partition("#")
    try:
        frames = read_frames(path)
    except FileNotFoundError:
        raise UserError(f"{code}.not_found", f"no such video: {path}") from None
    except Exception as e:  # PyAV raises its own errors for a file that is not a video
        raise UserError(f"{code}.unreadable", f"cannot read {path} as a video: {e}") from None
    try:
        return frames[int(index) if index else -1]
    except (ValueError, IndexError):
        raise UserError(f"{code}.frame", f"{path} has frames 0..{len(frames) - 1}, not {index!r}") from None


def _open(image: Image, code: str) -> np.ndarray:
    from PIL import Image as PILImage
    from PIL import UnidentifiedImageError

    if isinstance(image, np.ndarray):
        return image
    if str(image).lower().partition("#")[0].endswith((".mp4", ".mov", ".webm", ".mkv")):
        return _video_frame(str(image), code)
    try:
        with PILImage.open(image) as im:
            return np.asarray(im.convert("RGB"))
    except FileNotFoundError:
        raise UserError(f"{code}.not_found", f"no such image: {image}") from None
    except (UnidentifiedImageError, OSError) as e:
        raise UserError(f"{code}.unreadable", f"cannot read {image} as an image: {e}") from None


def _crop_resize(a: np.ndarray, width: int, height: int, mask: bool):
    from PIL import Image as PILImage

    h, w = a.shape[:2]
    if h < 1 or w < 1:
        raise ValueError("empty image")
    aspect = width / height
    if w / h > aspect:  # too wide: crop the sides
        cw = max(1, round(h * aspect))
        a = a[:, (w - cw) // 2 : (w - cw) // 2 + cw]
    else:  # too tall: crop top and bottom
        ch = max(1, round(w / aspect))
        a = a[(h - ch) // 2 : (h - ch) // 2 + ch]
    if mask:
        im = PILImage.fromarray((np.clip(a, 0, 1) * 255).astype(np.uint8))
        return np.asarray(im.resize((width, height), PILImage.Resampling.BOX), np.float32) / 255.0
    return np.asarray(PILImage.fromarray(a).resize((width, height), PILImage.Resampling.LANCZOS))


def load_frame(image: Image, width: int, height: int, code: str = "input.image") -> np.ndarray:
    """A keyframe: (height, width, 3) uint8 RGB, center-cropped to the aspect and resized."""
    a = _open(image, code)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=-1)
    if a.ndim != 3 or a.shape[-1] not in (3, 4) or min(a.shape[:2]) < 1:
        raise UserError(f"{code}.shape", f"an image must be (H, W, 3) RGB, got shape {a.shape}")
    if a.dtype != np.uint8:
        raise UserError(f"{code}.dtype", f"an image array must be uint8, got {a.dtype}")
    return _crop_resize(np.ascontiguousarray(a[..., :3]), width, height, mask=False)


def load_mask(image: Image, width: int, height: int, code: str = "input.mask") -> np.ndarray:
    """A mask: (height, width) float32 in [0, 1]; from an image, white (or any bright pixel) is in."""
    a = _open(image, code)
    if a.ndim == 3:
        a = a[..., :3].mean(axis=-1)
    if a.ndim != 2 or min(a.shape) < 1:
        raise UserError(f"{code}.shape", f"a mask must be a 2-D image, got shape {a.shape}")
    a = a.astype(np.float32) / (255.0 if a.dtype == np.uint8 else 1.0)
    m = _crop_resize(a, width, height, mask=True)
    if m.max() <= 0:
        raise UserError(f"{code}.empty", "the mask selects nothing (all black)")
    return m


@dataclass(frozen=True)
class CameraControl:
    """A camera move for every segment of a video: steady axes, or one path over the whole video."""

    axes: dict[str, float] | None = None
    points: np.ndarray | None = None  # (K, 5): t, x, y, zoom, roll

    def path(self, times: np.ndarray) -> CameraPath:
        """(zoom, rotation, tx, ty) at `times` (seconds from the start of the video)."""
        if self.axes is not None:
            return camera_from_axes(self.axes, times)
        p = self.points
        at = [np.interp(times, p[:, 0], p[:, i]) for i in range(1, 5)]
        return at[2], at[3], at[0], at[1]  # zoom, roll, x, y

    def describe(self) -> Any:
        return self.axes if self.axes is not None else self.points.tolist()


def parse_camera(value: Any) -> CameraControl | None:
    """None, a preset name, a dict of axes, or a list of path points -> CameraControl."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            cam = Camera(value.strip().lower().replace(" ", "_").replace("-", "_"))
        except ValueError:
            names = ", ".join(c.value for c in Camera)
            raise UserError(
                "input.camera.unknown", f"unknown camera move {value!r}; choose from {names}"
            ) from None
        return CameraControl(axes=PRESET_AXES[cam])
    if isinstance(value, dict):
        try:
            axes = {str(k): float(v) for k, v in value.items()}
            camera_from_axes(axes, np.zeros(1))  # checks the names and the ranges
        except (TypeError, ValueError) as e:
            raise UserError(
                "input.camera.axes", f"bad camera axes: {e} (axes: {', '.join(CAMERA_AXES)})"
            ) from None
        return CameraControl(axes=axes)
    if isinstance(value, list | tuple):
        try:
            rows = [[float(p["t"]), float(p.get("x", 0)), float(p.get("y", 0)), float(p.get("zoom", 1)),
                     float(p.get("roll", 0))] for p in value]  # fmt: skip
        except (TypeError, KeyError, ValueError, AttributeError):
            raise UserError(
                "input.camera.path", "a camera path is a list of {t, x, y, zoom, roll} points"
            ) from None
        p = np.array(rows, np.float64)
        if len(p) == 0 or not np.isfinite(p).all() or np.any(np.diff(p[:, 0]) <= 0) or np.any(p[:, 3] <= 0):
            raise UserError("input.camera.path", "camera path times must increase and zoom be > 0")
        if p[0, 0] > 0:  # the video starts where the camera is at rest
            p = np.vstack([[0.0, 0.0, 0.0, 1.0, 0.0], p])
        return CameraControl(points=p)
    raise UserError("input.camera.type", "camera is a preset name, a dict of axes or a list of path points")


# The world's presets as axes (5 = the preset's speed): one code path for presets and axes.
PRESET_AXES: dict[Camera, dict[str, float]] = {
    Camera.STATIC: {},
    Camera.PAN_LEFT: {"pan": -5.0},
    Camera.PAN_RIGHT: {"pan": 5.0},
    Camera.TILT_UP: {"tilt": 5.0},
    Camera.TILT_DOWN: {"tilt": -5.0},
    Camera.ZOOM_IN: {"zoom": 5.0},
    Camera.ZOOM_OUT: {"zoom": -5.0},
    Camera.ORBIT: {"roll": 5.0},
}


def parse_brush(regions: Any, width: int, height: int) -> list[Region]:
    """A list of {"mask": image, "path": [[t, x, y], ...]} -> Regions on the model's frame."""
    if not regions:
        return []
    if not isinstance(regions, list | tuple):
        raise UserError("input.brush.type", "the motion brush is a list of regions")
    if len(regions) > MAX_REGIONS:
        raise UserError(
            "input.brush.too_many", f"at most {MAX_REGIONS} motion-brush regions, got {len(regions)}"
        )
    out = []
    for i, r in enumerate(regions):
        if not isinstance(r, dict) or "mask" not in r or "path" not in r:
            raise UserError("input.brush.region", f"region {i}: needs a mask and a path")
        try:
            path = np.asarray(r["path"], np.float64)
        except (TypeError, ValueError):
            path = np.zeros((0,))
        if path.ndim != 2 or path.shape[1] != 3 or len(path) < 2 or not np.isfinite(path).all():
            raise UserError(
                "input.brush.path", f"region {i}: the path is a list of >= 2 [seconds, x, y] points"
            )
        if np.any(np.diff(path[:, 0]) <= 0):
            raise UserError("input.brush.path", f"region {i}: path times must increase")
        out.append(Region(load_mask(r["mask"], width, height, "input.brush.mask"), path))
    return out
