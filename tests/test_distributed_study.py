"""A study run as two processes (jax.distributed, two CPU devices each, gloo): process 0
writes the one run directory and prints the table, process 1 prints nothing, and the
results equal those of one process on one device, timings aside."""

import json
import os
import socket
import subprocess
import sys

STUDY = ["-m", "experiments.quasi_newton", "--n=3", "--seeds=6", "--repeats=1",
         "--methods=bfgs,lbfgs", "--noscipy", "--compilation_cache="]
TIMINGS = ("time_per_run_s", "compile_s")


def _rows(out_dir) -> list[dict]:
    (run_dir,) = out_dir.iterdir()
    results = json.loads((run_dir / "results.json").read_text())
    return [{key: value for key, value in row.items() if key not in TIMINGS}
            for row in results["sizes"]["3"]["rows"]]


def test_two_processes_write_what_one_process_writes(tmp_path):
    with socket.socket() as probe:  # a free port for the coordinator
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    spread = dict(env, XLA_FLAGS="--xla_force_host_platform_device_count=2")
    workers = [subprocess.Popen(
        [sys.executable, *STUDY, f"--out={tmp_path / 'spread'}",
         f"--coordinator_address=127.0.0.1:{port}", "--num_processes=2",
         f"--process_id={process}"], env=spread, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True) for process in (0, 1)]
    try:
        alone = subprocess.run([sys.executable, *STUDY, f"--out={tmp_path / 'alone'}"],
                               env=env, capture_output=True, text=True, timeout=240)
        outputs = [worker.communicate(timeout=240) for worker in workers]
    finally:
        for worker in workers:
            worker.kill()
    assert alone.returncode == 0, alone.stderr[-3000:]
    for worker, (out, err) in zip(workers, outputs):
        assert worker.returncode == 0, err[-3000:]
    assert "| bfgs" in outputs[0][0] and "Writing to" in outputs[0][0]
    assert outputs[1][0] == ""  # process 1 prints nothing
    assert _rows(tmp_path / "spread") == _rows(tmp_path / "alone")
    (run_dir,) = (tmp_path / "spread").iterdir()
    run = json.loads((run_dir / "run.json").read_text())
    assert run["processes"] == 2 and len(run["devices"]) == 4
