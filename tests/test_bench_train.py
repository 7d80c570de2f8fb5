"""experiments.bench_train at a tiny size: both sides do the same work, the report renders.

No speed is asserted: the numbers depend on the machine and on what else runs on it.
"""

import jax
import numpy as np
import pytest

from experiments import bench_train as bench

ROWS, EPOCHS, SEEDS = 64, 2, 2


@pytest.fixture(scope="module")
def measured():
    return bench.measure(
        epochs=EPOCHS, batch1_epochs=1, seed_epochs=EPOCHS, repeats=1, seeds=SEEDS,
        mnist_rows=4 * bench.MNIST_BATCH, wine_rows=ROWS, log=lambda _: None,
    )


def test_bare_programs_train_run_0_alike_in_every_variant():
    """The diagnosis times programs that do the same work: run 0 of every variant (vmapped,
    shared minibatches, looped, block-diagonal products) equals the single run, and the
    other run differs from it."""
    x, y = bench.wine_data(ROWS)
    programs = bench.bare_programs(
        bench.WINE_SIZES, bench.optax.sgd(0.1), bench.models.activations.leaky_relu,
        n=ROWS, batch_size=8, dropout=0.2, seeds=SEEDS, epochs=2,
    )
    outputs = {name: program(*state, (x, y)) for name, (program, state) in programs.items()}
    single_params, _, single_loss = outputs.pop("one run")
    assert list(outputs) == [
        f"{SEEDS} runs vmapped, own minibatches",
        f"{SEEDS} runs vmapped, shared minibatches",
        f"{SEEDS} runs, lax.map",
        f"{SEEDS} runs, block-diagonal products",
    ]
    for name, (params, _, losses) in outputs.items():
        first = jax.tree.map(lambda leaf: leaf[0], params)
        assert bench._largest_difference(first, single_params) < 1e-6, name
        assert losses.shape == (SEEDS,), name
        assert losses[0] == pytest.approx(float(single_loss), rel=1e-6)
        assert abs(float(losses[1]) - float(single_loss)) > 1e-4, name


def test_every_comparison_is_measured_and_both_sides_agree(measured):
    rows = measured["rows"]
    assert [row["comparison"] for row in rows] == [
        "MNIST MLP, batch 256, one run",
        "MNIST MLP, batch 1, 100 epochs",
        "wine MLP, vmapped seeds",
        "wine MLP, vmapped seeds",
        "MNIST MLP, vmapped seeds",
        "MNIST MLP, vmapped seeds",
    ]
    first = rows[0]
    # The Flax idiom (nnx.Optimizer, a Python loop of nnx.jit steps) is written apart from
    # the engine's scan: agreement to rounding means both did the same arithmetic ...
    assert first["loss_difference"] <= 1e-5 * first["peer_final_loss"]
    assert first["params_difference"] < 1e-5
    # ... of real training: the loss fell from about log(10) at the start.
    assert first["peer_final_loss"] < 0.9 * np.log(10)
    batch1 = rows[1]
    assert batch1["updates"] == 100 * 4 * bench.MNIST_BATCH
    assert batch1["optlab_s"] == pytest.approx(100 * batch1["measured_s"])
    for row in rows[2:]:
        # Run 0 of the vmapped fit is seed 0, as the single fit it is compared with.
        assert row["optlab_final_loss"] == pytest.approx(row["peer_final_loss"], rel=1e-5)
        assert row["ratio"] == pytest.approx(row["optlab_s"] / row["peer_s"])
    labels = [s["epochs_per_call"] for s in measured["epochs_per_call"]]
    assert labels == ["1", "all"]  # 10 epochs per call is "all" at 2 epochs
    assert measured["diagnosis"] is None


def test_report_has_a_row_and_a_verdict_per_comparison(measured):
    diagnosis = [
        {"model": "wine", "variant": "one run", "epoch_s": 2e-3, "of_one_run": 1.0},
        {"model": "wine", "variant": "2 runs, lax.map", "epoch_s": 3e-3, "of_one_run": 1.5},
    ]
    text = bench.format_report(measured | {"diagnosis": diagnosis})
    table = [line for line in text.splitlines() if line.startswith("| ")]
    assert table[0].startswith("| comparison")
    comparisons = table[1 : 1 + len(measured["rows"])]
    assert len(comparisons) == 6
    for line in comparisons:
        assert line.endswith(("| yes |", "| **no** |")), line
    assert "(from 1 epochs:" in comparisons[1] and "< 60 s with compile" in comparisons[1]
    assert "epochs_per_call=" in comparisons[0] and "runs_per_vmap=1" in comparisons[3]
    assert "optlab / peer ≤ 0.5" in comparisons[0] and "≤ 2" in comparisons[2]
    assert "| wine | 2 runs, lax.map | 3 ms | 1.50 |" in text
    assert "Bare programs" not in bench.format_report(measured)


def test_block_dense_is_every_runs_own_dense_layer():
    rng = np.random.default_rng(0)
    x, kernel, bias = (rng.normal(size=shape).astype(np.float32)
                       for shape in [(3, 5, 4), (3, 4, 2), (3, 2)])
    expected = np.stack([x[r] @ kernel[r] + bias[r] for r in range(3)])
    np.testing.assert_allclose(bench.block_dense(x, kernel, bias), expected, rtol=1e-5, atol=1e-6)


def test_bad_counts_raise_before_any_work():
    with pytest.raises(ValueError, match="seeds must be at least 1"):
        bench.measure(seeds=0)
    with pytest.raises(ValueError, match="batch1_epochs must be at most 100"):
        bench.measure(batch1_epochs=101)


def test_bad_flags_exit_with_one_readable_line(run_script):
    done, errors = run_script("experiments.bench_train", "--repeats=0")
    assert done.returncode == 2
    assert len(errors) == 1 and "--repeats must be at least 1" in errors[0], done.stderr[-2000:]
    done, errors = run_script("experiments.bench_train", "--epochs=abc")
    assert done.returncode == 2 and len(errors) == 1 and "--epochs" in errors[0]
