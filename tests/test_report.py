"""Tests of optlab.report: Markdown and CSV rendering, JSON conversion, durations."""

import csv
import dataclasses
import enum
import io
import json
import math
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
import pytest

from optlab.report import Column, csv_text, format_seconds, markdown_table, to_jsonable


class Outcome(enum.IntEnum):
    CONVERGED = 0
    MAX_ITERS = 1


class Point(NamedTuple):
    x: float
    y: float


@dataclasses.dataclass
class Config:
    name: str
    sizes: tuple[int, ...]


ROWS = [
    {"method": "bfgs", "iterations": 12, "seconds": 0.00321, "status": Outcome.CONVERGED},
    {"method": "gd", "iterations": None, "seconds": float("nan"), "status": Outcome.MAX_ITERS},
    {"method": "newton", "iterations": np.int64(3), "seconds": jnp.float32(1.5)},
]
COLUMNS = [
    Column("method", "method"),
    Column("iterations", "iterations"),
    Column("seconds", "time", format_seconds),
    Column("status", "status"),
]


def _cells(line):
    assert line.startswith("| ") and line.endswith(" |")
    return line[2:-2].split(" | ")


def test_markdown_table_layout():
    lines = markdown_table(ROWS, COLUMNS).splitlines()
    assert len(lines) == 2 + len(ROWS)
    # Every row has the same width, so the raw text lines up in a terminal.
    assert len({len(line) for line in lines}) == 1
    assert [cell.strip() for cell in _cells(lines[0])] == ["method", "iterations", "time", "status"]
    assert [cell.strip() for cell in _cells(lines[2])] == ["bfgs", "12", "3.21 ms", "CONVERGED"]
    assert [cell.strip() for cell in _cells(lines[3])] == ["gd", "—", "—", "MAX_ITERS"]
    assert [cell.strip() for cell in _cells(lines[4])] == ["newton", "3", "1.50 s", "—"]


def test_markdown_alignment_numbers_right_strings_left():
    lines = markdown_table(ROWS, COLUMNS).splitlines()
    rule = _cells(lines[1])
    assert [marker.startswith(":") for marker in rule] == [True, False, False, True]
    assert [marker.endswith(":") for marker in rule] == [False, True, True, False]
    assert all(set(marker) <= {":", "-"} and len(marker) >= 3 for marker in rule)
    method, iterations, _, _ = _cells(lines[2])
    assert method.startswith("bfgs") and method != "bfgs"
    assert iterations.endswith("12") and iterations != "12"


def test_markdown_format_string_and_escaping():
    table = markdown_table(
        [{"name": "a|b", "value": math.pi}, {"name": None, "value": np.nan}],
        [Column("name", "name"), Column("value", "value", "{:.3g}")],
    )
    lines = table.splitlines()
    assert [cell.strip() for cell in _cells(lines[2])] == [r"a\|b", "3.14"]
    assert [cell.strip() for cell in _cells(lines[3])] == ["—", "—"]
    assert table.endswith("\n")


def test_markdown_table_without_rows_has_header_and_rule():
    lines = markdown_table([], COLUMNS).splitlines()
    assert len(lines) == 2


def test_csv_round_trips_raw_values():
    text = csv_text(ROWS, COLUMNS)
    records = list(csv.reader(io.StringIO(text)))
    assert records[0] == ["method", "iterations", "seconds", "status"]
    assert records[1] == ["bfgs", "12", "0.00321", "CONVERGED"]
    assert records[2][:2] == ["gd", ""] and math.isnan(float(records[2][2]))
    assert records[3] == ["newton", "3", "1.5", ""]
    assert float(records[1][2]) == ROWS[0]["seconds"]


def test_csv_quotes_separators_and_keeps_float_precision():
    value = 0.1 + 0.2
    text = csv_text([{"name": 'a, "b"', "x": value}], [Column("name", "N"), Column("x", "X")])
    (record,) = list(csv.reader(io.StringIO(text)))[1:]
    assert record[0] == 'a, "b"'
    assert float(record[1]) == value


def test_csv_without_columns_keeps_the_scalar_keys_in_order():
    rows = [{"method": "bfgs", "iterations": np.int64(12), "curve": np.ones(3),
             "iterations_text": "12 ± 0"},
            {"method": "gd", "seconds": 0.5, "iterations": None, "curve": np.ones(3)}]
    records = list(csv.reader(io.StringIO(csv_text(rows))))
    assert records == [["method", "iterations", "seconds"], ["bfgs", "12", ""],
                       ["gd", "", "0.5"]]


def test_to_jsonable_nested_structures():
    obj = {
        "summary": Point(1.0, float("nan")),
        "status": Outcome.MAX_ITERS,
        "numpy": np.array([[1.0, np.inf], [-np.inf, 2.5]]),
        "jax": jnp.arange(3, dtype=jnp.int32),
        "jax_scalar": jnp.float32(0.5),
        "scalars": (np.float64(0.25), np.int16(7), np.bool_(True), None, "text"),
        "config": Config("quadratic", (10, 100)),
        Outcome.CONVERGED: [float("-inf")],
        3: "int key",
    }
    converted = to_jsonable(obj)
    assert converted == {
        "summary": {"x": 1.0, "y": None},
        "status": "MAX_ITERS",
        "numpy": [[1.0, None], [None, 2.5]],
        "jax": [0, 1, 2],
        "jax_scalar": 0.5,
        "scalars": [0.25, 7, True, None, "text"],
        "config": {"name": "quadratic", "sizes": [10, 100]},
        "CONVERGED": [None],
        "3": "int key",
    }
    assert type(converted["scalars"][1]) is int
    assert json.loads(json.dumps(converted, allow_nan=False)) == converted


@pytest.mark.parametrize(
    "obj, type_name",
    [({1, 2}, "set"), (1 + 2j, "complex"), ([object()], "object"), ({(1, 2): 3}, "tuple")],
)
def test_to_jsonable_rejects_unknown_types(obj, type_name):
    with pytest.raises(TypeError, match=type_name):
        to_jsonable(obj)


@pytest.mark.parametrize(
    "seconds, text",
    [
        (0.0, "0 s"),
        (412e-9, "412 ns"),
        (412e-6, "412 µs"),
        (41.2e-6, "41.2 µs"),
        (999.7e-6, "1.00 ms"),
        (3.21e-3, "3.21 ms"),
        (1.5, "1.50 s"),
        (12.34, "12.3 s"),
        (59.996, "1 min 00 s"),
        (123.4, "2 min 03 s"),
        (3725.0, "1 h 02 min"),
        (float("nan"), "—"),
    ],
)
def test_format_seconds(seconds, text):
    assert format_seconds(seconds) == text


def test_format_seconds_rejects_negative():
    with pytest.raises(ValueError, match="negative"):
        format_seconds(-1.0)
