"""optlab.models.pooling.max_pool against flax's reduce_window pooling."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from optlab.models.pooling import max_pool


@pytest.mark.parametrize("shape, window", [((3, 28, 28, 4), (2, 2)), ((2, 13, 11, 3), (2, 2)),
                                           ((2, 9, 5), (2,)), ((2, 8, 9, 2), (2, 3))])
def test_max_pool_equals_flax_valid_pooling_with_its_gradient(shape, window):
    x = jnp.asarray(np.random.default_rng(0).standard_normal(shape), jnp.float32)  # no ties
    expected = nnx.max_pool(x, window_shape=window, strides=window, padding="VALID")
    np.testing.assert_array_equal(max_pool(x, window), expected)
    cotangent = jnp.asarray(np.random.default_rng(1).standard_normal(expected.shape), jnp.float32)
    ours = jax.grad(lambda x: jnp.sum(max_pool(x, window) * cotangent))(x)
    theirs = jax.grad(lambda x: jnp.sum(
        nnx.max_pool(x, window_shape=window, strides=window, padding="VALID") * cotangent))(x)
    np.testing.assert_array_equal(ours, theirs)


def test_max_pool_rejects_a_window_of_the_wrong_rank():
    with pytest.raises(ValueError, match="window"):
        max_pool(jnp.zeros((1, 4, 4, 1)), (2,))
