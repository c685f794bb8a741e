"""Standard output and error that never fail a command: a lost reader is not an error.

``llm-proxy-db setup 2>&1 | head -3``: once ``head`` exits, every write to the pipe raises
``BrokenPipeError``.  Raised from a progress callback, it stopped a migration half-way.
:func:`guard` wraps ``sys.stdout`` and ``sys.stderr`` so that a write or flush to a reader
that is gone is swallowed: the stream's descriptor is pointed at ``/dev/null`` (so the
interpreter's own flush at exit, and everything after, succeeds quietly), the output stops,
and the command runs to its end with its own exit code.  Characters the stream's encoding
lacks are escaped, never fatal.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any, TextIO

_LOST_READER = (BrokenPipeError, ConnectionResetError)


class PipeSafeStream:
    """A text stream whose writes never raise because its reader went away."""

    def __init__(self, inner: TextIO) -> None:
        self._inner = inner
        self.reader_gone = False

    def write(self, text: str) -> int:
        """Write ``text``; after the reader has gone, a no-op that reports success."""
        if not self.reader_gone:
            try:
                return self._inner.write(text)
            except _LOST_READER:
                self._lost()
        return len(text)

    def writelines(self, lines: Any) -> None:
        """Write each line (see :meth:`write`)."""
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        """Flush; swallowed when the reader has gone."""
        if not self.reader_gone:
            try:
                self._inner.flush()
            except _LOST_READER:
                self._lost()

    def isatty(self) -> bool:
        """Whether the stream is a terminal (False once its reader has gone)."""
        return not self.reader_gone and self._inner.isatty()

    def _lost(self) -> None:
        """Point the descriptor at /dev/null: later writes (ours, the interpreter's final flush)
        succeed and go nowhere."""
        self.reader_gone = True
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(devnull, self._inner.fileno())
            finally:
                os.close(devnull)
        with contextlib.suppress(*_LOST_READER, OSError, ValueError):
            self._inner.flush()  # what was pending goes to /dev/null now

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def guard() -> None:
    """Make ``sys.stdout`` and ``sys.stderr`` pipe-safe and never fail on an unencodable character."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is None or isinstance(stream, PipeSafeStream):
            continue
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")
        setattr(sys, name, PipeSafeStream(stream))
