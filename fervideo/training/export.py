"""Export a trained ``.keras`` model to the ``.tflite`` file the tool runs, and check they agree."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np

from fervideo.files import atomic_output


def export_tflite(keras_path: str | Path, tflite_path: str | Path, float16_weights: bool = False, int8_faces: np.ndarray | None = None) -> Path:
    """Convert with TensorFlow's converter: float32, no quantisation, so accuracy stays the Keras one.

    ``float16_weights`` stores the weights as float16 (half the file; the runtime widens them to
    float32 at load, so speed is unchanged): used for the large accurate tier, whose outputs then
    differ from the Keras model's by ~1e-4, which the model card states and a test bounds.

    ``int8_faces`` (n, 48, 48) uint8, from the Training split only, makes a full-integer model
    instead: weights and activations int8, calibrated on those faces (post-training
    quantisation), input and output float32 so it is a drop-in file. It is a model of its own,
    judged by its own measured accuracy (issue 23), not by closeness to Keras.
    """
    from fervideo.emotions.architectures import import_keras

    keras = import_keras()
    import tensorflow as tf

    model = keras.saving.load_model(keras_path, compile=False)
    # from_keras_model keeps the free batch dimension; the runtime resizes it to its batch size.
    # (from_concrete_functions with captured variables produced a constant model here.)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if float16_weights:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    if int8_faces is not None:
        calib = np.asarray(int8_faces, np.float32).reshape(-1, 1, 48, 48, 1)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([x] for x in calib)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    with contextlib.redirect_stdout(io.StringIO()):  # the converter prints its SavedModel captures
        data = converter.convert()
    out = Path(tflite_path)
    with atomic_output(out) as tmp:
        tmp.write_bytes(data)
    return out


def max_abs_difference(keras_path: str | Path, tflite_path: str | Path, faces: np.ndarray) -> float:
    """Largest absolute probability difference between the two files on ``faces`` (n, 48, 48[, 1])."""
    from fervideo.emotions.architectures import import_keras
    from fervideo.emotions.classifier import EmotionClassifier

    model = import_keras().saving.load_model(keras_path, compile=False)
    x = faces.reshape(-1, 48, 48, 1).astype(np.float32)
    ref = np.asarray(model(x, training=False))
    got = EmotionClassifier(tflite_path, batch_size=64).predict(faces)
    return float(np.abs(ref - got).max())
