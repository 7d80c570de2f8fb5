"""Checkpoints of a training loop's whole state, with orbax, in a directory the caller names.

Contract: :class:`Checkpointer` saves any pytree of arrays together with a JSON
*configuration* (what the state was computed from: seeds, hyperparameters, data shapes,
...) under a step number, here the number of epochs done. :meth:`Checkpointer.restore`
returns the newest saved state only if its configuration equals the one given, and
raises otherwise, so a study never silently resumes from a different study's state.

The state is stored as its flat list of leaves and rebuilt with the structure of a
template (a freshly initialised state of the same configuration), so any pytree works,
including ``nnx.State`` and optax states. Typed PRNG keys are stored as their raw key
data and rewrapped with the template's implementation. Leaves come back as host
(NumPy) arrays; placing them on devices is the caller's business, which keeps a
checkpoint independent of the number of devices. This is the only place where optlab's
library writes files.
"""

from __future__ import annotations

import json
import os
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

PyTree = Any


def _is_key(leaf) -> bool:
    return jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key)


def _to_storable(leaf) -> np.ndarray:
    return np.asarray(jax.random.key_data(leaf) if _is_key(leaf) else leaf)


def _from_stored(stored: np.ndarray, template):
    if _is_key(template):
        return jax.random.wrap_key_data(stored, impl=jax.random.key_impl(template))
    return stored


def _leaf_name(index: int) -> str:
    return f"{index:06d}"


class Checkpointer:
    """Saves and restores one training state in ``directory`` (created if missing).

    Keeps the newest ``max_to_keep`` checkpoints; saving is synchronous, so a state is on
    disk when :meth:`save` returns. Use as a context manager or call :meth:`close`.
    """

    def __init__(self, directory: str | os.PathLike, *, max_to_keep: int = 2):
        if max_to_keep < 1:
            raise ValueError(f"max_to_keep must be at least 1, got {max_to_keep}")
        self.directory = os.path.abspath(os.fspath(directory))
        self._manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(
                max_to_keep=max_to_keep, create=True, enable_async_checkpointing=False
            ),
        )

    def latest_step(self) -> int | None:
        """The step of the newest checkpoint, or None when there is none."""
        return self._manager.latest_step()

    def save(self, step: int, state: PyTree, config: dict) -> None:
        """Writes ``state`` (any pytree of arrays) and its JSON-serialisable ``config``."""
        leaves = {
            _leaf_name(i): _to_storable(leaf) for i, leaf in enumerate(jax.tree.leaves(state))
        }
        self._manager.save(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(leaves), config=ocp.args.JsonSave(config)
            ),
        )
        self._manager.wait_until_finished()

    def restore(self, template: PyTree, config: dict) -> tuple[int, PyTree] | None:
        """``(step, state)`` of the newest checkpoint, or None when the directory has none.

        ``template`` gives the structure, shapes and dtypes of the state.

        Raises:
          ValueError: the saved configuration differs from ``config`` (the message names
            the entries that differ), or the saved state does not fit ``template``.
        """
        step = self.latest_step()
        if step is None:
            return None
        saved_config = self._manager.restore(
            step, args=ocp.args.Composite(config=ocp.args.JsonRestore())
        ).config
        expected = _json_round_trip(config)
        if saved_config != expected:
            differing = sorted(
                key
                for key in set(saved_config) | set(expected)
                if saved_config.get(key) != expected.get(key)
            )
            raise ValueError(
                f"the checkpoint in {self.directory} was made with a different configuration "
                f"(entries that differ: {', '.join(differing)}); use another directory or "
                "delete it to start afresh"
            )
        template_leaves, structure = jax.tree.flatten(template)
        abstract = {
            _leaf_name(i): _to_storable(leaf) for i, leaf in enumerate(template_leaves)
        }
        stored = self._manager.restore(
            step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract))
        ).state
        if set(stored) != set(abstract):
            raise ValueError(
                f"the checkpoint in {self.directory} does not fit the state's structure"
            )
        leaves = [
            _from_stored(stored[_leaf_name(i)], leaf) for i, leaf in enumerate(template_leaves)
        ]
        return step, jax.tree.unflatten(structure, leaves)

    def close(self) -> None:
        self._manager.close()

    def __enter__(self) -> "Checkpointer":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def _json_round_trip(config: dict) -> dict:
    """``config`` as it reads back from JSON (tuples become lists), for comparison."""
    return json.loads(json.dumps(config))
