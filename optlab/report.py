"""Renders study results as text: Markdown tables, CSV, JSON-ready objects, durations.

Contract: every function here returns a string or plain Python objects and never touches
the file system; writing results is the job of `experiments/kit/rundir.py`. Rows are mappings
from column key to value; a `Column` says which key to show, under which header and how
to format it. Missing values (None, NaN, a key absent from a row) are shown as "—" in
Markdown and left empty in CSV. Enum values are shown by name, 0-d NumPy/JAX arrays as
their scalar, so a `Status` code or a `jnp.mean(...)` can go into a row unconverted.
"""

import csv
import dataclasses
import enum
import io
import math
import numbers
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import numpy as np

MISSING = "—"


class Column(NamedTuple):
    """One column of a table: the row key, the header shown, and how to format a value.

    `fmt` is either a format string applied as `fmt.format(value)` (e.g. "{:.3g}") or a
    callable from value to text. It is never called on a missing value. Wherever a
    function here takes columns, a plain tuple `(key, header[, fmt])` will do.
    """

    key: str
    header: str
    fmt: str | Callable[[Any], str] = "{}"


def markdown_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[Column]) -> str:
    """Renders rows as a GitHub-flavoured Markdown table, padded to read well as raw text.

    A column whose present values are all real numbers (bool excluded) is right-aligned
    (`---:`); any other column is left-aligned. Missing values are rendered as "—" and
    a "|" inside a cell is escaped.

    Example:
      >>> columns = [Column("m", "method"), Column("it", "iters")]
      >>> print(markdown_table([{"m": "bfgs", "it": 12}], columns), end="")
      | method | iters |
      | :----- | ----: |
      | bfgs   |    12 |
    """
    columns = [Column(*column) for column in columns]
    values = [[_plain(row.get(column.key)) for column in columns] for row in rows]
    cells = [
        [_format_cell(value, column.fmt) for value, column in zip(row, columns)] for row in values
    ]
    numeric = [
        any(not _is_missing(row[j]) for row in values)
        and all(_is_missing(row[j]) or _is_real_number(row[j]) for row in values)
        for j in range(len(columns))
    ]
    headers = [column.header.replace("|", r"\|") for column in columns]
    # Three characters is the shortest alignment marker GitHub accepts (":--", "--:").
    widths = [
        max(3, len(headers[j]), *(len(row[j]) for row in cells)) for j in range(len(columns))
    ]

    def render(texts: Sequence[str]) -> str:
        padded = [
            text.rjust(width) if right else text.ljust(width)
            for text, width, right in zip(texts, widths, numeric)
        ]
        return "| " + " | ".join(padded) + " |"

    rule = [
        "-" * (width - 1) + ":" if right else ":" + "-" * (width - 1)
        for width, right in zip(widths, numeric)
    ]
    return "\n".join([render(headers), "| " + " | ".join(rule) + " |", *map(render, cells)]) + "\n"


def csv_text(rows: Sequence[Mapping[str, Any]], columns: Sequence[Column] | None = None) -> str:
    """Renders rows as CSV: a header of column keys, then raw (unformatted) values.

    Floats are written with every digit (`str` of a Python float), so they read back exactly;
    `fmt` and `header` are ignored. None and absent keys give an empty field; NaN gives "nan".
    Without `columns`, the columns are the keys of the rows in the order they first appear,
    but for keys whose values are not scalars (lists, arrays: they belong in JSON) and keys
    ending in "_text" (a formatted copy of another column, as `optlab.stats.mean_std_columns`
    makes them).
    """
    if columns is None:
        keys = dict.fromkeys(key for row in rows for key in row if not key.endswith("_text"))
        columns = [Column(key, key) for key in keys
                   if all(_is_scalar(_plain(row.get(key))) for row in rows)]
    columns = [Column(*column) for column in columns]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([column.key for column in columns])
    for row in rows:
        writer.writerow([_plain(row.get(column.key)) for column in columns])
    return buffer.getvalue()


def to_jsonable(obj: Any) -> Any:
    """Converts a nested result into objects that `json.dumps(..., allow_nan=False)` accepts.

    Handles dicts (str, int or enum keys), lists, tuples, NamedTuples and dataclass
    instances (both become dicts of their fields), NumPy and JAX arrays and scalars
    (nested lists), enums (their name, so `Status.converged` becomes "converged"), and
    Python scalars. NaN and ±inf become None, since strict JSON has no such numbers.

    Raises:
      TypeError: for anything else (sets, complex numbers, arbitrary objects), naming the
        type.
    """
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, enum.Enum):
        return obj.name
    if isinstance(obj, numbers.Integral) and not isinstance(obj, np.generic):
        return int(obj)
    if isinstance(obj, float):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {_json_key(key): to_jsonable(value) for key, value in obj.items()}
    if isinstance(obj, tuple) and hasattr(obj, "_asdict"):
        return {name: to_jsonable(value) for name, value in obj._asdict().items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(value) for value in obj]
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {
            field.name: to_jsonable(getattr(obj, field.name)) for field in dataclasses.fields(obj)
        }
    # NumPy scalars and arrays, and JAX arrays through their __array__ protocol; importing
    # jax here would make the report module pay JAX's start-up cost.
    if isinstance(obj, (np.ndarray, np.generic)) or hasattr(obj, "__array__"):
        array = np.asarray(obj)
        if array.dtype.kind in "biufUS":
            return to_jsonable(array.tolist())
    raise TypeError(f"cannot convert an object of type {type(obj).__qualname__} to JSON")


def format_seconds(seconds: float) -> str:
    """Formats a duration in human units with three significant digits.

    Examples: "412 µs", "3.21 ms", "1.50 s", "2 min 03 s", "1 h 05 min". Zero is "0 s";
    NaN and ±inf are "—" (no measurement).

    Raises:
      ValueError: for a negative duration.
    """
    seconds = float(seconds)
    if not math.isfinite(seconds):
        return MISSING
    if seconds < 0:
        raise ValueError(f"a duration cannot be negative, got {seconds}")
    if seconds == 0:
        return "0 s"
    for unit, scale in (("ns", 1e-9), ("µs", 1e-6), ("ms", 1e-3)):
        # Round before choosing the unit so 999.7 µs becomes "1.00 ms", not "1000 µs".
        value = float(f"{seconds / scale:.3g}")
        if value < 1000:
            return f"{value:.{_decimals(value)}f} {unit}"
    value = float(f"{seconds:.3g}")
    if value < 60:
        return f"{value:.{_decimals(value)}f} s"
    whole = round(seconds)
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    minutes = round(seconds / 60)
    return f"{minutes // 60} h {minutes % 60:02d} min"


def _decimals(value: float) -> int:
    """Digits after the point that show three significant digits of 0 < value < 1000."""
    return 2 if value < 10 else 1 if value < 100 else 0


def _plain(value: Any) -> Any:
    """Unwraps the values a study puts in a row: enums to names, 0-d arrays to scalars."""
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, np.generic) or (hasattr(value, "__array__") and np.ndim(value) == 0):
        return np.asarray(value).item()
    return value


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, numbers.Number))


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _is_real_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _format_cell(value: Any, fmt: str | Callable[[Any], str]) -> str:
    if _is_missing(value):
        return MISSING
    text = fmt(value) if callable(fmt) else fmt.format(value)
    return text.replace("|", r"\|")


def _json_key(key: Any) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, enum.Enum):
        return key.name
    if isinstance(key, numbers.Integral) and not isinstance(key, bool):
        return str(int(key))
    raise TypeError(f"cannot use a key of type {type(key).__qualname__} in a JSON object")
