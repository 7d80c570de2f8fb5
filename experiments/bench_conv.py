r"""Benchmark: convolutions as matrix products against flax's convolution layers, in ``fit``.

    python -m experiments.bench_conv
    python -m experiments.bench_conv --epochs=3 --models=cnn,conv_ae_1d

The conv models of ``optlab.models`` apply their ``nnx.Conv`` / ``nnx.ConvTranspose``
layers through ``optlab.models.convolution.apply``, which computes each layer as one
matrix product per kernel tap. The peer is the same models with every layer applied as
flax applies it, ``layer(x)`` (XLA's convolution ops): ``convolution.apply`` is replaced
by that call while the peer's program is traced. Both train one run with
``optlab.train.fit`` (Adam 1e-3, MSE or cross-entropy, no dropout, epochs as a
``lax.scan`` of steps, every epoch in one call) from the same initial weights on the same
random data, so their final losses must agree to float32 rounding; the difference is
reported. The peer is also timed as one compiled step called from Python (the "no
loop" column, median of an epoch's worth of calls): on XLA's CPU backend a convolution's gradients are many times slower
inside a loop body than outside one (jax-ml/jax#12868), which is what the matrix
products avoid.

Models and sizes (random inputs of the study's shapes; the step count per epoch is
small so that the peer's slow epochs stay affordable):

* ``conv_ae_1d``: ``ConvAutoencoder1D`` on 1024 windows of 288, batch 128 (NAB study);
* ``conv_ae_2d``: ``ConvAutoencoder2D`` on 1024 images 28 x 28, batch 128;
* ``spectrogram_ae``: ``SpectrogramAutoencoder`` on 64 spectrograms 64 x 312, batch 32;
* ``cnn``: ``CNN`` on 500 images 28 x 28 with 10 classes, batch 250.

Reported per model: milliseconds per training step of each side (run time of the fit
divided by its steps, compile apart), compile times, the ratio optlab / peer, and the
largest difference of the final training losses. No figure is a guarantee: times
depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import contextlib
import functools
import time
from typing import Callable, NamedTuple
from unittest import mock

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import flags

from experiments.kit import cli
from experiments.bench_quasi_newton import machine
from optlab import models, report, sweep, train
from optlab.models import convolution

NAME = "bench_conv"


class Case(NamedTuple):
    build: Callable[..., object]
    shape: tuple[int, ...]  # data, rows first
    batch_size: int
    classes: int | None  # None: an autoencoder (reconstruction MSE)


CASES = {
    "conv_ae_1d": Case(
        functools.partial(models.ConvAutoencoder1D, dropout=0.0), (1024, 288, 1), 128, None
    ),
    "conv_ae_2d": Case(models.ConvAutoencoder2D, (1024, 28, 28, 1), 128, None),
    "spectrogram_ae": Case(models.SpectrogramAutoencoder, (64, 64, 312, 1), 32, None),
    "cnn": Case(models.CNN, (500, 28, 28, 1), 250, 10),
}


@contextlib.contextmanager
def flax_convolutions():
    """Within it, the conv models apply their layers as flax does (``layer(x)``)."""
    with mock.patch.object(convolution, "apply", lambda layer, x: layer(x)):
        yield


def _data(case: Case, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=case.shape).astype(np.float32)
    if case.classes is None:
        return train.reconstruction("mse"), (x,)
    labels = rng.integers(0, case.classes, case.shape[0]).astype(np.int32)
    return train.classification(), (x, labels)


def time_fit(case: Case, epochs: int) -> dict:
    """One run trained by ``fit``; time per step, compile time and final loss."""
    task, data = _data(case)
    runs = train.init_runs(case.build, optax.adam(1e-3), seeds=[0])
    result = train.fit(runs, task, data, batch_size=case.batch_size, max_epochs=epochs)
    steps = epochs * train.batches_per_epoch(case.shape[0], case.batch_size)
    return {
        "step_ms": 1e3 * result.run_seconds / steps,
        "compile_s": result.compile_seconds,
        "final_loss": float(result.history["train_loss"][0, -1]),
    }


def time_separate_steps(case: Case, steps: int) -> float:
    """Milliseconds per step of ``train.train_step`` compiled alone (no loop around it):
    the median of ``steps`` calls timed by ``optlab.sweep.time_compiled``."""
    task, data = _data(case)
    runs = train.init_runs(case.build, optax.adam(1e-3), seeds=[0])
    run = jax.tree.map(lambda leaf: leaf[0], runs.state)
    batch = tuple(jnp.asarray(array[: case.batch_size]) for array in data)
    step = functools.partial(train.train_step, runs, task)
    _, timing = sweep.time_compiled(step, run, batch, repeats=steps)
    return 1e3 * timing.run_seconds


def measure(
    cases: dict[str, Case], *, epochs: int, log: Callable[[str], None] = print
) -> list[dict]:
    """One row per case: both sides timed (see the module docstring)."""
    rows = []
    for name, case in cases.items():
        log(f"{name}: optlab")
        ours = time_fit(case, epochs)
        log(f"{name}: flax convolution layers")
        with flax_convolutions():
            theirs = time_fit(case, epochs)
            steps = train.batches_per_epoch(case.shape[0], case.batch_size)
            no_loop = time_separate_steps(case, steps)
        rows.append({
            "model": name,
            "batch": case.batch_size,
            "optlab_step_ms": ours["step_ms"],
            "peer_step_ms": theirs["step_ms"],
            "peer_no_loop_step_ms": no_loop,
            "ratio": ours["step_ms"] / theirs["step_ms"],
            "optlab_compile_s": ours["compile_s"],
            "peer_compile_s": theirs["compile_s"],
            "loss_difference": abs(ours["final_loss"] - theirs["final_loss"]),
        })
    return rows


COLUMNS = [
    report.Column("model", "model"),
    report.Column("batch", "batch"),
    report.Column("optlab_step_ms", "optlab ms/step (fit)", "{:.1f}"),
    report.Column("peer_step_ms", "flax layers ms/step (fit)", "{:.1f}"),
    report.Column("ratio", "ratio optlab / flax", "{:.3f}"),
    report.Column("peer_no_loop_step_ms", "flax layers ms/step (no loop)", "{:.1f}"),
    report.Column("optlab_compile_s", "compile optlab", report.format_seconds),
    report.Column("peer_compile_s", "compile flax", report.format_seconds),
    report.Column("loss_difference", "|final loss difference|", "{:.1e}"),
]


def define_flags() -> None:
    flags.DEFINE_integer("epochs", 2, "Epochs of every fit.")
    flags.DEFINE_list("models", list(CASES), f"Models to time: {','.join(CASES)}.")


def main(argv):
    FLAGS = flags.FLAGS
    if len(argv) > 1:
        return cli.fail(NAME, f"unexpected arguments: {' '.join(argv[1:])}")
    if FLAGS.epochs < 1:
        return cli.fail(NAME, f"--epochs must be at least 1, got {FLAGS.epochs}")
    unknown = [name for name in FLAGS.models if name not in CASES]
    if unknown or not FLAGS.models:
        return cli.fail(
            NAME, f"--models must name some of {','.join(CASES)}, got {','.join(FLAGS.models)}"
        )
    info = machine()
    print(
        f"machine: {info['processor']}, {info['cpu_count']} CPUs, devices [{info['devices']}], "
        f"python {info['python']}, jax {info['jax']}"
    )
    start = time.perf_counter()
    rows = measure({name: CASES[name] for name in FLAGS.models}, epochs=FLAGS.epochs)
    print(f"benchmark took {time.perf_counter() - start:.1f} s\n")
    print(report.markdown_table(rows, COLUMNS))
    return 0


if __name__ == "__main__":
    cli.run_script(NAME, main, define_flags)
