"""Run directories: the one place where studies write files.

Contract: `RunDir.create(root, name)` makes a fresh directory `root/name-YYYYmmdd-HHMMSS`
(with "-2", "-3", ... appended when that already exists, so two runs started in the same
second never share a directory). Every write goes to a temporary file in the destination
directory and is then moved into place with `os.replace`, so a reader (or a crash) never
sees a half-written `results.json` or PNG, and no temporary file survives a write, whether
it succeeded or raised. Paths given to the write methods are relative to the run directory
and may not leave it; missing subdirectories are created.
"""

import contextlib
import json
import os
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO, Callable

from matplotlib.figure import Figure

from optlab.report import to_jsonable


class RunDir:
    """A directory holding the outputs of one run of a study."""

    def __init__(self, path: str | Path):
        """Wraps an existing directory; use `RunDir.create` to make a new one."""
        self.path = Path(path)

    @classmethod
    def create(cls, root: str | Path, name: str) -> "RunDir":
        """Makes `root/name-YYYYmmdd-HHMMSS` (or `...-2`, `...-3` if taken) and returns it.

        `root` is created if needed. The timestamp is local time.
        """
        root = Path(root)
        root.mkdir(parents=True, exist_ok=True)
        base = f"{name}-{datetime.now():%Y%m%d-%H%M%S}"
        suffix = 1
        while True:
            path = root / (base if suffix == 1 else f"{base}-{suffix}")
            # mkdir without exist_ok is the uniqueness check, so concurrent runs cannot
            # both claim the same directory.
            try:
                path.mkdir()
            except FileExistsError:
                suffix += 1
                continue
            return cls(path)

    def write_text(self, relpath: str | Path, text: str) -> Path:
        """Writes `text` as UTF-8 to `relpath` atomically; returns the final path."""
        return self._write_atomically(relpath, lambda file: file.write(text.encode("utf-8")))

    def write_json(self, relpath: str | Path, obj: Any) -> Path:
        """Writes `obj` as strict JSON (NaN and inf become null) atomically.

        The object goes through `optlab.report.to_jsonable`, so NumPy/JAX arrays,
        NamedTuples, dataclasses and enums are accepted. Returns the final path.

        Raises:
          TypeError: if part of `obj` cannot be converted (nothing is written).
        """
        text = json.dumps(to_jsonable(obj), indent=2, sort_keys=False, allow_nan=False)
        return self.write_text(relpath, text + "\n")

    def save_figure(self, relpath: str | Path, fig: Figure, dpi: int = 120) -> Path:
        """Saves `fig` atomically; the format comes from the suffix of `relpath` (e.g. .png).

        Returns the final path.
        """
        image_format = Path(relpath).suffix.removeprefix(".") or None
        return self._write_atomically(
            relpath, lambda file: fig.savefig(file, format=image_format, dpi=dpi)
        )

    def save_animation(self, relpath: str | Path, animation: Any, fps: int = 10, dpi: int = 80) -> Path:
        """Saves a matplotlib animation as a GIF (Pillow, no ffmpeg), atomically.

        Returns the final path.
        """
        from matplotlib.animation import PillowWriter

        with self._atomic_target(relpath) as temporary:
            animation.save(temporary, writer=PillowWriter(fps=fps), dpi=dpi)
        return self._resolve(relpath)

    def _write_atomically(self, relpath: str | Path, write: Callable[[BinaryIO], Any]) -> Path:
        """Calls `write` on a temporary file next to the target, then moves it into place."""
        with self._atomic_target(relpath) as temporary:
            with open(temporary, "xb") as file:
                write(file)
                file.flush()
                os.fsync(file.fileno())
        return self._resolve(relpath)

    @contextlib.contextmanager
    def _atomic_target(self, relpath: str | Path):
        """Yields a temporary path next to the target; moves it into place on success.

        The temporary is a hidden, uniquely named sibling (same file system, so
        `os.replace` is atomic) with the target's suffix, for writers that read the
        format from the name. On failure it is removed and the target is untouched.
        """
        final = self._resolve(relpath)
        final.parent.mkdir(parents=True, exist_ok=True)
        temporary = final.with_name(f".{final.stem}.{uuid.uuid4().hex}.tmp{final.suffix}")
        try:
            yield temporary
            os.replace(temporary, final)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise

    def _resolve(self, relpath: str | Path) -> Path:
        """Returns `path / relpath`, refusing a target outside the run directory."""
        root = self.path.resolve()
        target = (root / relpath).resolve()
        if target == root or not target.is_relative_to(root):
            raise ValueError(f"{relpath!s} is not a file path inside the run directory {root}")
        return self.path / relpath
