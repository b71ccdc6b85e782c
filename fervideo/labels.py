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
