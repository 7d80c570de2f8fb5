"""optlab.train.checkpoint: round trips of any pytree, and refusal of another configuration."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from optlab import train


def _state(seed: int):
    model = nnx.Linear(3, 2, param_dtype=jnp.float32, rngs=nnx.Rngs(seed))
    params = nnx.state(model, nnx.Param)
    return {
        "params": params,
        "opt_state": optax.adam(1e-3).init(params),
        "keys": jax.random.split(jax.random.key(seed), 3),
        "epoch": jnp.int32(seed),
    }


def _assert_equal(actual, expected):
    def same(a, e):
        if jax.dtypes.issubdtype(e.dtype, jax.dtypes.prng_key):
            a, e = jax.random.key_data(a), jax.random.key_data(e)
        np.testing.assert_array_equal(a, e)

    assert jax.tree.structure(actual) == jax.tree.structure(expected)
    jax.tree.map(same, actual, expected)


def test_round_trip_keeps_the_newest_state(tmp_path):
    config = {"seeds": [0, 1], "batch_size": 4}
    with train.Checkpointer(tmp_path, max_to_keep=2) as checkpointer:
        assert checkpointer.latest_step() is None
        assert checkpointer.restore(_state(0), config) is None
        for step in (1, 2, 3):
            checkpointer.save(step, _state(step), config)
    with train.Checkpointer(tmp_path) as checkpointer:
        step, restored = checkpointer.restore(_state(0), config)
    assert step == 3
    _assert_equal(restored, _state(3))
    assert sorted(path.name for path in tmp_path.iterdir()) == ["2", "3"]


def test_a_different_configuration_is_refused(tmp_path):
    with train.Checkpointer(tmp_path) as checkpointer:
        checkpointer.save(1, _state(1), {"seeds": [0, 1], "batch_size": 4})
        with pytest.raises(ValueError, match=r"entries that differ: batch_size\)"):
            checkpointer.restore(_state(0), {"seeds": [0, 1], "batch_size": 8})
        # Tuples read back from JSON as lists: an equal configuration.
        assert checkpointer.restore(_state(0), {"seeds": (0, 1), "batch_size": 4})[0] == 1


def test_bad_max_to_keep(tmp_path):
    with pytest.raises(ValueError, match="max_to_keep"):
        train.Checkpointer(tmp_path, max_to_keep=0)
