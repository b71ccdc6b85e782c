"""The TFLite runtime, shared by the detectors and the emotion classifier (no stage owns it).

ai-edge-litert imports in 0.1 s where TensorFlow takes ~4 s, and runs the networks through XNNPACK;
its C++ start-up banner is kept off the user's terminal.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

from fervideo.errors import ModelError


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """Silence the runtime's C++ banner ('Created TensorFlow Lite XNNPACK delegate') on fd 2.

    Errors still surface: the runtime raises them as Python exceptions, which are not affected.
    fd 2 is process-wide, so the lock serialises threads that create interpreters at the same time
    (otherwise one could save the other's /dev/null as "the real stderr" and never restore it).
    """
    with _STDERR_LOCK:
        try:
            saved = os.dup(2)
        except OSError:
            yield
            return
        try:
            with open(os.devnull, "w") as devnull:
                os.dup2(devnull.fileno(), 2)
                yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


_STDERR_LOCK = threading.Lock()


def make_interpreter(model_path: str | Path, num_threads: int) -> object:
    """A TFLite interpreter from ai-edge-litert (fast import), or TensorFlow's if that is all there is."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # pragma: no cover - ai-edge-litert is a dependency
        from tensorflow.lite import Interpreter  # type: ignore[no-redef]
    try:
        with quiet_stderr():
            it = Interpreter(model_path=str(model_path), num_threads=num_threads)
            it.allocate_tensors()  # the delegate (and its banner) is created here
            return it
    except (ValueError, RuntimeError) as e:
        raise ModelError(model_path, f"not a loadable TFLite model ({str(e).splitlines()[0]})") from None
