"""experiments.bench_conv at a tiny size: both sides train alike, the report renders.

No speed is asserted: the numbers depend on the machine and on what else runs on it.
"""

import functools

from experiments import bench_conv as bench
from optlab import models, report

SMALL = {
    "conv_ae_1d": bench.Case(
        functools.partial(models.ConvAutoencoder1D, length=32, dropout=0.0), (16, 32, 1), 8, None
    ),
    "cnn": bench.Case(
        functools.partial(models.CNN, conv_features=(4, 4), dense_features=(8, 8)),
        (16, 28, 28, 1), 8, 10,
    ),
}


def test_both_sides_train_alike_and_every_figure_is_positive():
    rows = bench.measure(SMALL, epochs=2, log=lambda _: None)
    assert [row["model"] for row in rows] == list(SMALL)
    for row in rows:
        assert row["loss_difference"] < 1e-5, row
        for key in ("optlab_step_ms", "peer_step_ms", "peer_no_loop_step_ms", "ratio"):
            assert row[key] > 0, (key, row)
    assert "ratio optlab / flax" in report.markdown_table(rows, bench.COLUMNS)


def test_the_peer_applies_the_flax_layers():
    """Inside flax_convolutions the models call the layers themselves: the traced
    program has convolution ops, and outside it none."""
    import jax
    import jax.numpy as jnp
    from flax import nnx

    model = models.ConvAutoencoder1D(length=32, dropout=0.0, rngs=nnx.Rngs(0))
    x = jnp.zeros((2, 32, 1), jnp.float32)
    assert "conv_general_dilated" not in str(jax.make_jaxpr(lambda x: model(x))(x))
    with bench.flax_convolutions():
        assert "conv_general_dilated" in str(jax.make_jaxpr(lambda x: model(x))(x))


def test_bad_flags_exit_with_one_readable_line(tmp_path, run_script):
    done, errors = run_script("experiments.bench_conv", "--models=vae")
    assert done.returncode != 0
    assert len(errors) == 1 and "--models must name some of" in errors[0], done.stderr[-2000:]
