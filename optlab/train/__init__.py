"""Training loops as pure functions: minibatch runs under jit and vmap."""

from optlab.train.minibatch import (
    MinibatchRun,
    batches_per_epoch,
    run_minibatch,
    shuffled_batches,
    take_batches,
)

__all__ = ["MinibatchRun", "batches_per_epoch", "run_minibatch", "shuffled_batches", "take_batches"]
