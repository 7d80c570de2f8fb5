"""optlab.sweep: one vmapped program over seeds, sharding that does not change results, timing."""

import os
import socket
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import optlab
from optlab import problems, sweep


def _solve(problem):
    return optlab.minimize(
        problem.value,
        jnp.zeros_like(problem.minimizer),
        optlab.bfgs(),
        stop=optlab.stopping.distance_to(problem.minimizer, 1e-8),
        max_iters=200,
    )


def test_run_seeds_equals_unbatched_runs():
    batch = problems.seed_quadratics(6, 5)
    result, timing = sweep.run_seeds(_solve, batch, repeats=2)
    assert result.iterations.shape == (5,)
    for seed in range(5):
        single = jax.jit(_solve)(jax.tree.map(lambda x: x[seed], batch))
        assert int(single.iterations) == int(result.iterations[seed])
        np.testing.assert_allclose(single.params, result.params[seed], rtol=0, atol=1e-12)
    assert timing.compile_seconds > 0 and timing.run_seconds > 0
    assert len(timing.repeats) == 2 and timing.run_seconds == np.median(timing.repeats)


def test_run_seeds_in_groups_and_with_shared_arguments_equals_vmapping():
    runs_per_vmap = 2  # 5 seeds: two groups of 2, then one of 1
    batch = problems.seed_quadratics(6, 5)

    def solve(problem, shift):  # shift: shared by every seed, an argument of the program
        result = _solve(problem)
        return result.iterations, result.params + shift

    shift = jnp.arange(6.0)
    (iterations, params), _ = sweep.run_seeds(solve, batch, shift, repeats=1)
    (grouped, grouped_params), _ = sweep.run_seeds(solve, batch, shift, repeats=1,
                                                  runs_per_vmap=runs_per_vmap)
    np.testing.assert_array_equal(grouped, iterations)
    np.testing.assert_allclose(grouped_params, params, rtol=0, atol=1e-12)
    np.testing.assert_allclose(params - shift[None], batch.minimizer, atol=1e-7)
    # Groups are a loop in the program; one run at a time too.
    for k, looped in ((runs_per_vmap, True), (1, True), (None, False)):
        program = jax.make_jaxpr(sweep.over_runs(lambda x: x * 2.0, k))(jnp.ones((5, 3)))
        assert ("scan" in str(program)) == looped


def test_runs_per_vmap_must_be_a_positive_int():
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="runs_per_vmap must be None or a positive int"):
            sweep.run_seeds(_solve, problems.seed_quadratics(3, 2), runs_per_vmap=bad)


def test_run_settings_crosses_settings_with_seeds_and_shares_the_rest():
    def one(setting, start, target):
        result = optlab.minimize(lambda x: jnp.sum((x - target) ** 2), start,
                                 optlab.sgd(setting["learning_rate"]),
                                 stop=optlab.stopping.grad_norm(1e-6), max_iters=500)
        return result.iterations

    rates = {"learning_rate": jnp.array([0.1, 0.3, 0.45])}
    starts = jax.random.normal(jax.random.key(0), (4, 3))
    target = jnp.ones(3)
    iterations, timing = sweep.run_settings(one, rates, starts, target, repeats=1)
    assert iterations.shape == (3, 4) and timing.compile_seconds > 0
    for i, rate in enumerate(rates["learning_rate"]):
        for s in range(4):
            assert iterations[i, s] == one({"learning_rate": rate}, starts[s], target)
    assert np.all(iterations[0] > iterations[1])  # a larger step converges sooner


def test_time_compiled_rejects_zero_repeats():
    with pytest.raises(ValueError, match="repeats"):
        sweep.time_compiled(lambda x: x, jnp.ones(2), repeats=0)


def test_seed_count_requires_a_common_leading_axis():
    with pytest.raises(ValueError, match="leading"):
        sweep.seed_count({"a": jnp.ones((3, 2)), "b": jnp.ones((4,))})


def test_splittable_lapack_calls_are_batches_worth_splitting():
    def lowered(fn, *shape, dtype=jnp.float64):
        return jax.jit(fn).lower(jnp.ones(shape, dtype)).as_text()

    def eigh(a):
        return jnp.linalg.eigh(a)[0]

    splittable = sweep._splittable_lapack_calls
    assert splittable(lowered(eigh, 160, 160)) == []  # one matrix: run by its caller
    assert splittable(lowered(jax.vmap(eigh), 8, 160, 160)) == ["lapack_dsyevd_ffi"]
    assert splittable(lowered(lambda a: jax.lax.map(eigh, a, batch_size=1), 8, 160, 160)) == []
    assert splittable(lowered(jax.vmap(eigh), 3, 5, 5)) == []  # below jaxlib's work per task
    assert splittable(lowered(jax.vmap(jnp.linalg.inv), 8, 20, 20, dtype=jnp.complex128)) == [
        "lapack_zgetrf_ffi", "lapack_ztrsm_ffi"]
    # A call whose types cannot be read counts as splittable.
    assert splittable("%0 = stablehlo.custom_call @lapack_dgetrf_ffi(%x) : unknown") == [
        "lapack_dgetrf_ffi"]


SHARDED = textwrap.dedent(
    """
    import warnings
    import jax, jax.numpy as jnp, numpy as np
    jax.config.update("jax_enable_x64", True)
    import optlab
    from optlab import problems, sweep
    assert len(jax.devices()) == 4, jax.devices()

    def solve(problem):
        return optlab.minimize(problem.value, jnp.zeros_like(problem.minimizer), optlab.lbfgs(),
                               stop=optlab.stopping.distance_to(problem.minimizer, 1e-8),
                               max_iters=300)

    batch = problems.seed_quadratics(8, 6)  # 6 seeds on 4 devices: padded to 8
    sharded, _ = sweep.run_seeds(solve, batch, repeats=1)
    single, _ = sweep.run_seeds(solve, batch, repeats=1, devices=jax.devices()[:1])
    assert sharded.iterations.shape == (6,)
    np.testing.assert_array_equal(sharded.iterations, single.iterations)
    np.testing.assert_array_equal(sharded.status, single.status)
    np.testing.assert_allclose(sharded.params, single.params, rtol=0, atol=1e-12)

    # Batched LAPACK calls (Newton's eigh) on several CPU devices of one process: jaxlib
    # 0.10's kernels would hang there, so the sweep runs them on one device and says so.
    def newton(setting, problem):
        return optlab.minimize(problem.value, setting * jnp.ones_like(problem.minimizer),
                               optlab.newton(), stop=optlab.stopping.grad_norm(1e-9),
                               max_iters=3).params
    batch = problems.seed_quadratics(160, 8)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        by_seed, _ = sweep.run_seeds(lambda problem: newton(0.0, problem), batch, repeats=2)
        by_setting, _ = sweep.run_settings(newton, jnp.array([0.0, 1.0]), batch, repeats=2)
    first, last = sweep._POOLED_LAPACK
    if first <= sweep._jaxlib_version() < last:
        assert len(caught) == 2 and all("lapack_dsyevd" in str(w.message) for w in caught), caught
    np.testing.assert_allclose(by_seed, batch.minimizer, atol=1e-8)
    np.testing.assert_allclose(by_setting, np.stack([batch.minimizer] * 2), atol=1e-8)
    # One seed at a time, each eigh is a batch of one, which jaxlib runs in its caller: the
    # sweep keeps all four devices and does not warn.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        in_sequence, _ = sweep.run_seeds(lambda problem: newton(0.0, problem), batch,
                                         repeats=2, runs_per_vmap=1)
    np.testing.assert_allclose(in_sequence, batch.minimizer, atol=1e-8)
    print("sharded ok", np.asarray(sharded.iterations))
    """
)


def test_sharding_over_four_host_devices_equals_one_device():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    done = subprocess.run(
        [sys.executable, "-c", SHARDED], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "sharded ok" in done.stdout


# One of two processes (JAX's multi-controller runtime, CPU collectives over gloo), two
# devices each: the seeds are sharded over the four devices of both, and every process
# gets the whole result, equal to its own run on one local device.
DISTRIBUTED = textwrap.dedent(
    """
    import sys
    import jax, jax.numpy as jnp, numpy as np
    jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    port, process = sys.argv[1], int(sys.argv[2])
    jax.distributed.initialize(coordinator_address=f"127.0.0.1:{port}", num_processes=2,
                               process_id=process, initialization_timeout=60)
    import optlab
    from optlab import problems, sweep
    assert jax.process_count() == 2 and len(jax.devices()) == 4, jax.devices()

    def solve(problem):
        return optlab.minimize(problem.value, jnp.zeros_like(problem.minimizer), optlab.lbfgs(),
                               stop=optlab.stopping.distance_to(problem.minimizer, 1e-8),
                               max_iters=300, history=20)

    batch = problems.seed_quadratics(8, 6)  # 6 seeds on 4 devices: padded to 8
    spread, _ = sweep.run_seeds(solve, batch, repeats=1)
    single, _ = sweep.run_seeds(solve, batch, repeats=1, devices=jax.local_devices()[:1])
    assert spread.iterations.shape == (6,) and spread.history.values.shape == (6, 20)
    np.testing.assert_array_equal(spread.iterations, single.iterations)
    np.testing.assert_array_equal(spread.status, single.status)
    np.testing.assert_allclose(spread.params, single.params, rtol=0, atol=1e-12)
    np.testing.assert_allclose(spread.history.values, single.history.values, rtol=1e-12)
    print("distributed ok", process, np.asarray(spread.iterations))
    """
)


def test_seeds_sharded_over_two_processes_equal_one_device():
    with socket.socket() as probe:  # a free port for the coordinator
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2",
               JAX_PLATFORMS="cpu")
    workers = [subprocess.Popen([sys.executable, "-c", DISTRIBUTED, port, str(process)],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True) for process in (0, 1)]
    try:
        outputs = [worker.communicate(timeout=240) for worker in workers]
    finally:
        for worker in workers:
            worker.kill()
    for process, (worker, (out, err)) in enumerate(zip(workers, outputs)):
        assert worker.returncode == 0, err[-3000:]
        assert f"distributed ok {process}" in out


def test_timing_reads_as_the_run_then_the_compile():
    assert str(sweep.Timing(0.4123, 0.00321, (0.00321,))) == "3.21 ms (compiled in 412 ms)"
