"""A contact sheet: one row per clip, a few evenly spaced frames each, the caption underneath."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

THUMB_HEIGHT = 128  # pixels per frame on the sheet; small clips are enlarged by a whole factor
GAP = 4  # pixels between frames and around rows
FONT_SIZE = 13
MAX_LINES = 3  # caption lines under a row; longer captions end in an ellipsis
BACKGROUND = (24, 24, 24)
TEXT = (230, 230, 230)


def contact_sheet(clips: list[tuple[np.ndarray, str]], frames_per_row: int = 6) -> np.ndarray:
    """clips: (frames (T, H, W, 3) uint8, label) pairs -> the sheet, (H, W, 3) uint8 RGB."""
    if not clips:
        raise ValueError("a contact sheet needs at least one clip")
    font = ImageFont.load_default(size=FONT_SIZE)
    line_h = FONT_SIZE + 3
    rows = [_thumb_row(frames, frames_per_row) for frames, _ in clips]
    width = max(r.width for r in rows) + 2 * GAP
    texts = [_wrap(label, font, width - 2 * GAP) for _, label in clips]
    height = GAP + sum(r.height + len(t) * line_h + 2 * GAP for r, t in zip(rows, texts, strict=True))
    sheet = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    y = GAP
    for row, lines in zip(rows, texts, strict=True):
        sheet.paste(row, (GAP, y))
        y += row.height + GAP
        for line in lines:
            draw.text((GAP, y), line, fill=TEXT, font=font)
            y += line_h
        y += GAP
    return np.asarray(sheet)


def _thumb_row(frames: np.ndarray, k: int) -> Image.Image:
    """k evenly spaced frames side by side, scaled to THUMB_HEIGHT (whole-factor if enlarged)."""
    t, h, w, _ = frames.shape
    picks = np.linspace(0, t - 1, min(k, t)).round().astype(int)
    if h <= THUMB_HEIGHT:  # enlarge crisply: every source pixel becomes an equal square
        scale = max(1, THUMB_HEIGHT // h)
        size, resample = (w * scale, h * scale), Image.Resampling.NEAREST
    else:
        size, resample = (max(1, round(w * THUMB_HEIGHT / h)), THUMB_HEIGHT), Image.Resampling.BOX
    row = Image.new("RGB", (len(picks) * (size[0] + GAP) - GAP, size[1]), BACKGROUND)
    for j, i in enumerate(picks):
        row.paste(Image.fromarray(frames[i]).resize(size, resample), (j * (size[0] + GAP), 0))
    return row


def _wrap(text: str, font, width: int) -> list[str]:
    """Greedy word wrap to `width` pixels, at most MAX_LINES lines, an ellipsis if cut short."""
    lines: list[str] = []
    for word in text.split():
        if lines and font.getlength(f"{lines[-1]} {word}") <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    if len(lines) > MAX_LINES:
        last = lines[MAX_LINES - 1]
        while last and font.getlength(last + " ...") > width:
            last = last.rsplit(" ", 1)[0] if " " in last else last[:-1]
        lines = [*lines[: MAX_LINES - 1], last + " ..."]
    return lines
