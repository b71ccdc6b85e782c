"""The training loop: augmentation inside a wrapper model, cosine schedule, resumable checkpoints.

Design choices that matter for FER2013 on a few CPU cores:

* augmentation (flip, small shifts, rotation, zoom, contrast, random erasing) runs as Keras layers in
  a wrapper around the architecture, so it is batched graph work, not per-image Python, and the
  saved inference model carries none of it;
* label smoothing and mild (square-root) class weights: disgust has 436 training faces against
  7,215 happy ones, and full inverse-frequency weights cost overall accuracy; the targets are
  FER2013's labels, FER+'s votes or a mix (``--targets``), balanced by ``--balance``
  (:mod:`fervideo.training.ferplus`), and checkpoints are chosen on the targets' own label set;
* SGD with Nesterov momentum, linear warm-up then cosine decay, stepped per batch from the
  optimizer's own iteration counter, so ``--resume`` lands exactly where the schedule left off;
* optional fine-tuning (``init``: start from a trained model's weights) and self-distillation
  (``teacher``: the targets mix the label with the teacher's test-time-augmented probabilities),
  which tries to transfer what TTA buys into a single pass without changing the network's cost;
* ``mixed_bfloat16`` on CPUs with AMX/AVX512-BF16 (1.4x faster here); the shipped model is always
  re-built in float32 and given the trained weights, so inference and TFLite export see plain float32.

Only the Training split is used for gradients and only PublicTest for model selection and early
stopping; PrivateTest is never read here.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from fervideo.files import sha256_of
from fervideo.labels import EMOTIONS
from fervideo.training import data as fer_data
from fervideo.training.config import TrainConfig
from fervideo.training.ferplus import Validation, parse_targets, selection_score
from fervideo.training.run_folder import BEST, LOG, RunFolder, load_teacher_probs, teacher_targets, training_set, validation

__all__ = ["BEST", "LOG", "TrainConfig", "float32_model", "load_teacher_probs", "teacher_targets", "train", "training_splits"]
CHECKPOINT = "last.keras"


def _augmenter(keras: Any, seed: int, zoom_in: float = 0.15, zoom_out: float = 0.1) -> Any:
    layers = keras.layers
    return keras.Sequential(
        [
            layers.RandomFlip("horizontal", seed=seed),
            layers.RandomRotation(0.04, fill_mode="reflect", seed=seed + 1),
            layers.RandomTranslation(0.1, 0.1, fill_mode="reflect", seed=seed + 2),
            layers.RandomZoom((-zoom_in, zoom_out), fill_mode="reflect", seed=seed + 3),
            layers.RandomContrast(0.3, value_range=(0, 255), seed=seed + 4),
            layers.RandomBrightness(0.2, value_range=(0, 255), seed=seed + 5),
            layers.RandomErasing(factor=0.5, scale=(0.02, 0.15), value_range=(0, 255), seed=seed + 6),
        ],
        name="augment",
    )


def _pick_precision(requested: str) -> str:
    if requested != "auto":
        return requested
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "float32"
    return "mixed_bfloat16" if ("amx_bf16" in flags or "avx512_bf16" in flags) else "float32"


def float32_copy(core: Any, arch: str) -> Any:
    """Re-build ``arch`` under the float32 policy and give it ``core``'s weights."""
    return float32_model(arch, core.get_weights())


def float32_model(arch: str, weights: list[np.ndarray] | dict[str, list[np.ndarray]]) -> Any:
    """``arch`` built under the float32 policy (whatever policy training used) with ``weights``
    (a Keras model's ``get_weights()`` list, or each layer's by name, as the torch engine gives
    them): what is saved as ``best.keras`` by both engines."""
    from fervideo.emotions.architectures import build, import_keras

    keras = import_keras()
    prev = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        model = build(arch)
    finally:
        keras.config.set_dtype_policy(prev)
    if isinstance(weights, dict):
        for name, w in weights.items():
            model.get_layer(name).set_weights(w)
    else:
        model.set_weights(weights)
    return model


def _schedule(keras: Any, config: TrainConfig, steps_per_epoch: int) -> Any:
    """Linear warm-up to ``lr`` then cosine decay to 0 at the last planned epoch, per batch step."""
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if config.warmup_epochs else config.lr,
        decay_steps=max(1, (config.epochs - config.warmup_epochs) * steps_per_epoch),
        warmup_target=config.lr if config.warmup_epochs else None,
        warmup_steps=config.warmup_epochs * steps_per_epoch,
    )


def train(config: TrainConfig, out_dir: str | Path, resume: bool = False, verbose: int | None = None, epochs: int | None = None) -> Path:
    """Train (or continue training) and return the path of the best float32 model (``best.keras``).

    With ``resume``, the run's saved configuration is used; ``epochs`` may change the planned
    length (the cosine schedule is re-planned from the current step, so a run can be shortened
    or extended without starting over).
    """
    run = RunFolder(out_dir, CHECKPOINT)
    out = run.out
    config, replan = run.config(config, resume, epochs)
    # Data first: a wrong path fails in a second, before TensorFlow's ~4 s import and its log noise.
    dataset = fer_data.load(config.data)
    soft_all = load_teacher_probs(config.teacher_probs, dataset, config.teacher_temperature) if config.teacher_probs else None
    from fervideo.emotions.architectures import import_keras

    keras = import_keras()

    keras.utils.set_random_seed(config.seed)
    precision = _pick_precision(config.precision)
    keras.config.set_dtype_policy(precision)

    dataset, (x_train, y_train), (x_val, y_val) = training_splits(config, dataset)
    run.save_config(config)

    train_set = training_set(config, dataset, x_train, y_train, soft_all)
    val = validation(config, dataset, y_val)
    y_val_1h = keras.utils.to_categorical(y_val, len(EMOTIONS))
    steps_per_epoch = int(np.ceil(len(train_set.x) / config.batch_size))

    initial_epoch = 0
    if resume:
        initial_epoch = run.completed_epochs()
        model = keras.saving.load_model(out / CHECKPOINT)
        if replan:
            model.optimizer.learning_rate = _schedule(keras, config, steps_per_epoch)
    else:
        from fervideo.emotions.architectures import build

        core = build(config.arch)
        if config.init:
            _load_weights_into(core, config.init)
        inp = keras.Input(core.input_shape[1:], name="pixels")
        model = keras.Model(inp, core(_augmenter(keras, config.seed, config.zoom_in, config.zoom_out)(inp)), name="train_wrapper")
        model.compile(
            optimizer=keras.optimizers.SGD(_schedule(keras, config, steps_per_epoch), momentum=0.9, nesterov=True, weight_decay=config.weight_decay),
            loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing),
            metrics=["accuracy"],
        )
        run.clear()
    if initial_epoch >= config.epochs:
        return out / BEST

    callbacks = _callbacks(keras, run, config, x_val, val)
    if verbose is None:
        verbose = 1 if sys.stdout.isatty() else 2
    model.fit(
        train_set.x.astype("float32"),
        train_set.targets,
        batch_size=config.batch_size,
        epochs=config.epochs,
        initial_epoch=initial_epoch,
        validation_data=(x_val.astype("float32"), y_val_1h),
        sample_weight=train_set.weights,
        callbacks=callbacks,
        shuffle=True,
        verbose=verbose,
    )
    return out / BEST


def training_splits(config: TrainConfig, dataset: fer_data.FerData) -> tuple[fer_data.FerData, tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """The data a run trains on (both engines): records the data file's hash on the config, applies
    ``--limit``, and returns the (possibly subset) data with its Training and PublicTest splits."""
    if dataset.layout == "npz" and not config.data_sha256:
        config.data_sha256 = sha256_of(Path(config.data))
    if config.limit:
        dataset = dataset.subset(config.limit, seed=config.seed)
    train, public = dataset.split("train"), dataset.split("public")
    if len(train[0]) == 0 or len(public[0]) == 0:
        from fervideo.errors import DataFormatError

        raise DataFormatError(config.data, "needs faces in both the Training and PublicTest splits")
    return dataset, train, public


def _load_weights_into(core: Any, path: str) -> None:
    """Give ``core`` the weights of a trained model of the same architecture (fine-tuning)."""
    from fervideo.emotions.classifier import load_keras_model
    from fervideo.errors import ModelError

    src = load_keras_model(path)
    shapes = [w.shape for w in src.get_weights()]
    if shapes != [w.shape for w in core.get_weights()]:
        raise ModelError(path, f"--init model is not a {core.name} (different layers or sizes)")
    core.set_weights(src.get_weights())


def _callbacks(keras: Any, run: RunFolder, config: TrainConfig, x_val: np.ndarray, val: Validation) -> list[Any]:
    targets = parse_targets(config.targets)

    class EpochExtras(keras.callbacks.Callback):
        """Adds lr and epoch time to the log, and keeps the best float32 inference model."""

        def __init__(self) -> None:
            super().__init__()
            self.best = run.best_score()
            self.t0 = time.perf_counter()

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            logs = logs if logs is not None else {}
            lr = self.model.optimizer.learning_rate
            logs["lr"] = float(keras.ops.convert_to_numpy(lr))
            logs["epoch_time_s"] = round(time.perf_counter() - self.t0, 1)
            if val.plus_labels is not None:
                # Targets with FER+ votes are chosen on their own label set (issue 33): val_accuracy
                # becomes the selection score, with both accuracies logged beside it.
                pred = self.model.get_layer(index=-1).predict(x_val.astype("float32"), batch_size=256, verbose=0).argmax(1)
                fer, plus = val.scores(pred)
                logs["val_fer2013"], logs["val_ferplus"] = fer, plus
                logs["val_accuracy"] = selection_score(targets, fer, plus)
            acc = float(logs.get("val_accuracy", 0.0))
            if acc > self.best:
                self.best = acc
                core = self.model.get_layer(index=-1)
                with run.saving(BEST) as tmp:
                    float32_copy(core, config.arch).save(tmp)
            # The checkpoint is written after the best model so a kill between the two can only
            # repeat an epoch on resume, never lose the best model.
            with run.saving(CHECKPOINT) as tmp:
                self.model.save(tmp)

    return [
        EpochExtras(),
        keras.callbacks.CSVLogger(str(run.path(LOG)), append=True),
        keras.callbacks.EarlyStopping(monitor="val_accuracy", patience=config.patience, mode="max"),
        keras.callbacks.TerminateOnNaN(),
    ]
