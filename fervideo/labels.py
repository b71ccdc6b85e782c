"""The FER2013 class order: the one contract shared by training, the model file and every output."""

EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")

# One colour per emotion, used by the annotated video and every plot (RGB hex, colour-blind aware
# Okabe-Ito based palette).
EMOTION_COLORS: dict[str, str] = {
    "angry": "#D55E00",
    "disgust": "#009E73",
    "fear": "#CC79A7",
    "happy": "#E69F00",
    "sad": "#0072B2",
    "surprise": "#56B4E9",
    "neutral": "#999999",
}


def bgr(emotion: str) -> tuple[int, int, int]:
    """The emotion's colour as an OpenCV BGR tuple."""
    h = EMOTION_COLORS[emotion].lstrip("#")
    r, g, b = (int(h[i : i + 2], 16) for i in (0, 2, 4))
    return b, g, r


def text_color_on(background_bgr: tuple[int, int, int]) -> tuple[int, int, int]:
    """Black or white, whichever contrasts more with the background (WCAG relative luminance):
    black on the sad blue #0072B2 has a contrast ratio of 4.2, white 5.0; on the happy orange black
    wins by far."""

    def lin(c: int) -> float:
        v = c / 255
        return v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4

    b, g, r = background_bgr
    lum = 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b)
    on_black = (lum + 0.05) / 0.05
    on_white = 1.05 / (lum + 0.05)
    return (0, 0, 0) if on_black >= on_white else (255, 255, 255)
