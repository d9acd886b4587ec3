"""The hard kinds of copies of a photo, and the frames that different photos share, as image transforms.

Used by ``bench dedup-eval`` on real photos and by the tests on generated scenes, so both check the same
things: every transform takes a PIL RGB image and returns a new one. Frames that several photos share (the
phone UI, the white or black pad, the wooden frame with its mat, a patterned border) are drawn the same way
for every photo: pairs of *different* photos in them are the hard negatives.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont

Transform = Callable[[Image.Image], Image.Image]


def crop_centre(image: Image.Image, frac: float = 0.25) -> Image.Image:
    w, h = image.size
    dx, dy = round(w * frac / 2), round(h * frac / 2)
    return image.crop((dx, dy, w - dx, h - dy))


def crop_corner(image: Image.Image, frac: float = 0.25) -> Image.Image:
    w, h = image.size
    return image.crop((0, 0, round(w * (1 - frac)), round(h * (1 - frac))))


def rotate(image: Image.Image, degrees: float) -> Image.Image:
    """Rotated in pixels about the centre, same canvas (the corners fill black), as a "straighten" edit."""
    return image.rotate(degrees, resample=Image.Resampling.BICUBIC, expand=False)


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=max(8, size))


def text_overlay(image: Image.Image, text: str = "Summer 2024 - with love!") -> Image.Image:
    """A caption across the lower third, white with a dark outline (a meme, a greeting card)."""
    out = image.copy()
    w, h = out.size
    draw = ImageDraw.Draw(out)
    size = max(10, w // 14)
    draw.text(
        (w * 0.06, h * 0.7),
        text,
        font=_font(size),
        fill=(255, 255, 255),
        stroke_width=max(1, size // 12),
        stroke_fill=(0, 0, 0),
    )
    return out


def watermark(image: Image.Image, text: str = "(c) photoembed studio") -> Image.Image:
    """A half-transparent mark bottom right and a faint one across the middle."""
    base = image.convert("RGBA")
    layer = Image.new("RGBA", base.size, (0, 0, 0, 0))
    w, h = base.size
    draw = ImageDraw.Draw(layer)
    draw.text((w * 0.55, h * 0.88), text, font=_font(max(8, w // 28)), fill=(255, 255, 255, 150))
    draw.text((w * 0.2, h * 0.45), text, font=_font(max(10, w // 16)), fill=(255, 255, 255, 70))
    return Image.alpha_composite(base, layer).convert("RGB")


def pad_square(image: Image.Image, colour: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    w, h = image.size
    side = max(w, h)
    out = Image.new("RGB", (side, side), colour)
    out.paste(image, ((side - w) // 2, (side - h) // 2))
    return out


def phone_screenshot(image: Image.Image, width: int = 540) -> Image.Image:
    """The photo shown full width in a phone's photo viewer: status bar, toolbar, letterbox, navigation bar."""
    height = round(width * 19.5 / 9)
    screen = Image.new("RGB", (width, height), (0, 0, 0))
    shown = image.copy()
    shown.thumbnail((width, height), Image.Resampling.LANCZOS)
    top = (height - shown.height) // 2
    screen.paste(shown, ((width - shown.width) // 2, top))
    draw = ImageDraw.Draw(screen)
    unit = width / 100
    white = (235, 235, 235)
    # Status bar: clock, signal bars, wifi, battery.
    draw.text((5 * unit, 1.2 * unit), "12:45", font=_font(round(4 * unit)), fill=white)
    for k in range(4):
        x = 70 * unit + k * 2 * unit
        draw.rectangle((x, (4.5 - k) * unit + 1 * unit, x + 1.2 * unit, 5.5 * unit), fill=white)
    draw.rectangle((84 * unit, 2 * unit, 93 * unit, 5.5 * unit), outline=white, width=max(1, round(unit / 3)))
    draw.rectangle((85 * unit, 2.7 * unit, 90 * unit, 4.8 * unit), fill=white)
    # Toolbar: back arrow, title, share and menu icons.
    y = 11 * unit
    draw.line((5 * unit, y, 9 * unit, y - 3 * unit), fill=white, width=max(1, round(unit / 2)))
    draw.line((5 * unit, y, 9 * unit, y + 3 * unit), fill=white, width=max(1, round(unit / 2)))
    draw.text((14 * unit, y - 3 * unit), "IMG_2044.jpg", font=_font(round(4.5 * unit)), fill=white)
    draw.ellipse((80 * unit, y - 2 * unit, 84 * unit, y + 2 * unit), outline=white, width=max(1, round(unit / 3)))
    for k in range(3):
        draw.ellipse(
            (93 * unit, y - 3 * unit + k * 2.5 * unit, 94.5 * unit, y - 1.5 * unit + k * 2.5 * unit), fill=white
        )
    # Bottom: action icons, then the navigation bar.
    y = height - 22 * unit
    for k, x in enumerate((12, 37, 62, 87)):
        box = (x * unit - 3 * unit, y - 3 * unit, x * unit + 3 * unit, y + 3 * unit)
        if k % 2:
            draw.ellipse(box, outline=white, width=max(1, round(unit / 3)))
        else:
            draw.rectangle(box, outline=white, width=max(1, round(unit / 3)))
    y = height - 6 * unit
    draw.polygon([(25 * unit, y), (30 * unit, y - 3 * unit), (30 * unit, y + 3 * unit)], outline=white)
    draw.ellipse((47 * unit, y - 3 * unit, 53 * unit, y + 3 * unit), outline=white, width=max(1, round(unit / 3)))
    draw.rectangle((70 * unit, y - 3 * unit, 76 * unit, y + 3 * unit), outline=white, width=max(1, round(unit / 3)))
    return screen


def _texture(size: tuple[int, int], seed: int, tint: tuple[int, int, int], scale: float) -> Image.Image:
    """A fixed pattern (the same for every photo it frames)."""
    rng = np.random.default_rng(seed)
    w, h = size
    coarse = rng.uniform(0, 1, (max(2, h // 6), max(2, w // 6)))
    grain = np.asarray(Image.fromarray((coarse * 255).astype(np.uint8)).resize((w, h), Image.Resampling.BICUBIC))
    fine = rng.normal(0, 12, (h, w))
    level = grain.astype(np.float32) * scale + fine
    rgb = np.clip(np.array(tint, dtype=np.float32)[None, None, :] + level[..., None] - 60 * scale, 0, 255)
    return Image.fromarray(rgb.astype(np.uint8))


def framed_print(image: Image.Image) -> Image.Image:
    """A wooden frame and a white mat around the photo (a photographed or scanned framed print)."""
    w, h = image.size
    frame, mat = round(0.06 * max(w, h)), round(0.07 * max(w, h))
    size = (w + 2 * (frame + mat), h + 2 * (frame + mat))
    out = _texture(size, seed=11, tint=(120, 72, 40), scale=0.6)
    draw = ImageDraw.Draw(out)
    draw.rectangle((frame, frame, size[0] - frame - 1, size[1] - frame - 1), fill=(244, 242, 236))
    out.paste(image, (frame + mat, frame + mat))
    return out


def patterned_border(image: Image.Image) -> Image.Image:
    """The same busy border straight around the photo, no gap (a greeting-card or collage template)."""
    w, h = image.size
    edge = round(0.08 * max(w, h))
    out = _texture((w + 2 * edge, h + 2 * edge), seed=23, tint=(90, 130, 170), scale=1.0)
    out.paste(image, (edge, edge))
    return out


def misty(image: Image.Image) -> Image.Image:
    """A low-contrast, hazy version of a photo (PDQ quality about 30): the original of a misty group."""
    soft = image.filter(ImageFilter.GaussianBlur(radius=max(1.0, image.width / 500)))
    arr = np.asarray(soft, dtype=np.float32)
    grey = arr.mean(axis=2, keepdims=True)
    hazy = 175.0 + (0.6 * arr + 0.4 * grey - 128.0) * 0.16
    return Image.fromarray(np.clip(hazy, 0, 255).astype(np.uint8))


def brighten(image: Image.Image, factor: float = 1.1) -> Image.Image:
    return ImageEnhance.Brightness(image).enhance(factor)


def resize(image: Image.Image, factor: float = 0.5) -> Image.Image:
    return image.resize(
        (max(1, round(image.width * factor)), max(1, round(image.height * factor))), Image.Resampling.LANCZOS
    )


def moved_part(image: Image.Image, box: tuple[float, float, float, float], shift: float) -> Image.Image:
    """Another moment of the same scene: the part in ``box`` (shares of the sides) moved right by ``shift``
    of the width, the rest unchanged (a burst frame where someone moved, with no capture time to tell)."""
    w, h = image.size
    x0, y0, x1, y1 = int(box[0] * w), int(box[1] * h), int(box[2] * w), int(box[3] * h)
    out = image.copy()
    out.paste(image.crop((x0, y0, x1, y1)), (x0 + int(shift * w), y0))
    return out


#: (kind, transform) of the copies that are the same photo; the eval's recall columns.
SAME_PHOTO_KINDS: tuple[tuple[str, Transform], ...] = (
    ("crop 25% centre", crop_centre),
    ("crop 25% corner", crop_corner),
    ("rotated 3°", lambda im: rotate(im, 3.0)),
    ("rotated 5°", lambda im: rotate(im, -5.0)),
    ("text overlay", text_overlay),
    ("watermark", watermark),
    ("padded square", pad_square),
    ("phone screenshot", phone_screenshot),
)
#: Shared frames: a copy of each photo in each; between two photos, pairs that must never match.
FRAME_KINDS: tuple[tuple[str, Transform], ...] = (
    ("padded square", pad_square),
    ("padded square black", lambda im: pad_square(im, (0, 0, 0))),
    ("phone screenshot", phone_screenshot),
    ("framed print", framed_print),
    ("patterned border", patterned_border),
)
#: Variants of a misty original (a low-contrast photo and its copies).
MISTY_KINDS: tuple[tuple[str, Transform], ...] = (
    ("misty resize", resize),
    ("misty brightness +10%", brighten),
    ("misty crop 10%", lambda im: crop_corner(im, 0.1)),
    ("misty padded square", pad_square),
)
#: Other moments of a photo (hard negatives: never the same photo as it, nor as its copies).
OTHER_MOMENT_KINDS: tuple[tuple[str, Transform], ...] = (
    ("another moment: a fifth moved", lambda im: moved_part(im, (0.3, 0.25, 0.7, 0.75), 0.1)),
    ("another moment: a twentieth moved", lambda im: moved_part(im, (0.4, 0.4, 0.6, 0.65), 0.06)),
)
