"""The MNIST autoencoder study on a tiny config: its results, its figure data, its files."""

import dataclasses

import numpy as np
import pytest

from configs import mnist_autoencoders as default_config
from experiments import mnist_autoencoders as study
from optlab import datasets

SEEDS, EPOCHS = 2, 2
# 200 training / 50 validation / 100 test images; runs_per_vmap=None compiles faster
# than the default loop over seeds, which only changes how the runs are scheduled.
CONFIG = dataclasses.replace(
    default_config.get_config(),
    seeds=SEEDS,
    epochs=EPOCHS,
    train_limit=250,
    test_limit=100,
    batch_size=50,
    runs_per_vmap=None,
)


@pytest.fixture(scope="module")
def results():
    return study.run_study(CONFIG, log=lambda line: None)


def test_rows_report_the_issue_parameter_counts_and_code_shapes(results):
    rows = {row["model"]: row for row in results["rows"]}
    assert list(rows) == ["dense", "conv"]
    assert rows["dense"]["parameters"] == 829_284 and rows["dense"]["code_shape"] == "100"
    assert rows["conv"]["parameters"] == 3_217 and rows["conv"]["code_shape"] == "7x7x8"
    splits = datasets.mnist_splits(train_limit=250, test_limit=100)
    mean_image_mse = np.mean((splits.x_test - splits.x_train.mean(axis=0)) ** 2)
    mean_pixel = splits.x_train.mean(dtype=np.float64)
    assert results["data"] == {
        "train_images": 200,
        "validation_images": 50,
        "test_images": 100,
        "mean_image_test_mse": pytest.approx(mean_image_mse, rel=1e-5),
        "output_bias": pytest.approx(np.log(mean_pixel / (1 - mean_pixel)), rel=1e-6),
    }
    for row in rows.values():
        per_seed = np.asarray(row["test_mse_per_seed"])
        assert per_seed.shape == (SEEDS,)
        assert row["test_mse"] == pytest.approx(per_seed.mean())
        assert row["test_mse_std"] == pytest.approx(per_seed.std(ddof=1))
        assert row["collapsed_seeds"] == np.sum(per_seed >= results["data"]["mean_image_test_mse"])
        # Sigmoid outputs in (0, 1) against pixels in [0, 1]: an MSE below 1.
        assert 0 < row["test_mse"] < 1
        # Jensen: a mean absolute error squared is at most the mean squared error.
        assert row["test_mae"] ** 2 <= row["test_mse"] + 1e-6


def test_training_lowers_the_loss(results):
    for history in results["histories"].values():
        assert history["train_loss"].shape == (SEEDS, EPOCHS)
        assert np.all(history["val_loss"][:, -1] < history["val_loss"][:, 0])


def test_figure_shows_one_digit_of_each_class_with_codes_and_reconstructions(results):
    figure = results["figure"]
    _, labels = datasets.mnist_arrays("test", limit=CONFIG.test_limit)
    np.testing.assert_array_equal(labels[figure["test_indices"]], np.arange(10))
    assert figure["originals"].shape == (10, 28, 28)
    assert figure["codes"]["dense"].shape == (10, 100)
    assert figure["codes"]["conv"].shape == (10, 7, 7, 8)
    for reconstructions in figure["reconstructions"].values():
        assert reconstructions.shape == (10, 28, 28)
        assert np.all((reconstructions >= 0) & (reconstructions <= 1))
    # The figure digits' reconstruction error is of the size of the test MSE of that run.
    rows = {row["model"]: row for row in results["rows"]}
    for name, reconstructions in figure["reconstructions"].items():
        digit_mse = np.mean((reconstructions - figure["originals"]) ** 2)
        test_mse = rows[name]["test_mse_per_seed"][CONFIG.figure_run]
        assert digit_mse == pytest.approx(test_mse, rel=0.5)


def test_code_images_tile_the_conv_channels():
    code = np.arange(7 * 7 * 8, dtype=np.float32).reshape(7, 7, 8)
    image = study.code_image("conv", code)
    assert image.shape == (14, 28)
    for channel in range(8):
        row, column = divmod(channel, 4)
        np.testing.assert_array_equal(
            image[7 * row : 7 * row + 7, 7 * column : 7 * column + 7], code[..., channel]
        )
    dense = np.arange(100.0)
    np.testing.assert_array_equal(study.code_image("dense", dense), dense.reshape(10, 10))


def test_reports_tables_figures_and_metrics(results):
    written = study.write(CONFIG, results)
    assert set(written.figures) == {"digits.png", "loss_curves.png"}
    assert [row["model"] for row in written.results["rows"]] == ["dense", "conv"]
    assert list(written.metrics) == ["dense", "conv"] and "829,284" in written.markdown


def test_a_batch_larger_than_the_training_set_is_refused():
    with pytest.raises(ValueError, match="larger than the 4800 training images"):
        study.STUDY.check(dataclasses.replace(default_config.get_config(), batch_size=9999))


def test_the_mean_pixel_start_keeps_the_conv_model_out_of_saturation():
    # 80 Adam steps at 1e-3 (400 images, batch 50, 10 epochs). From Keras's zero bias the
    # sigmoid output saturates at 0 and the test MSE sticks above the mean image's; from
    # logit(mean pixel) the model learns the digits.
    small = dataclasses.replace(
        CONFIG, models=("conv",), seeds=1, train_limit=500, epochs=10, batch_size=50
    )
    rows, bias = {}, {}
    for at_mean in (False, True):
        results = study.run_study(
            dataclasses.replace(small, output_bias_at_mean=at_mean), log=lambda line: None
        )
        rows[at_mean], bias[at_mean] = results["rows"][0], results["data"]["output_bias"]
    mean_pixel = datasets.mnist_splits(train_limit=500, test_limit=100).x_train.mean()
    assert bias == {False: 0.0, True: pytest.approx(np.log(mean_pixel / (1 - mean_pixel)))}
    assert rows[False]["collapsed_seeds"] == 1
    assert rows[True]["collapsed_seeds"] == 0
    assert rows[True]["test_mse"] < 0.5 * rows[False]["test_mse"]
