"""The example study of the README: what it finds from three starts."""

import dataclasses

from experiments import example as study


def test_adam_always_gets_there_nesterov_faster_or_not_at_all():
    config = dataclasses.replace(study.get_config(), seeds=3)
    lines = []
    results = study.run(config, lines.append)
    rows = {row["optimizer"]: row for row in results["rows"]}
    assert set(rows) == {"adam", "nesterov"} and len(lines) == 2
    assert rows["adam"]["converged"] == "3/3"
    converged, diverged = (int(rows["nesterov"][key].split("/")[0])
                           for key in ("converged", "diverged"))
    assert converged >= 1 and converged + diverged == 3
    steps = {name: float(row["steps"].split(" ± ")[0]) for name, row in rows.items()}
    assert steps["nesterov"] < steps["adam"] < config.max_iters
    assert results["curves"]["adam"].shape == (3, config.max_iters + 1)
    written = study.write(config, results)
    assert "n = 2, 3 starts" in written.markdown and "convergence.png" in written.figures
