"""The one error type of the XML configuration: a file, a line and a plain-English message."""

from __future__ import annotations

from pathlib import Path


def _display(path: Path) -> str:
    # Shown relative to the working directory when possible, so messages read like `config/meters/x.xml`.
    try:
        return path.absolute().relative_to(Path.cwd()).as_posix()
    except ValueError:
        return str(path)


class ConfigError(Exception):
    """A configuration file is unreadable, unsafe, invalid against its XSD, or inconsistent.

    `str()` is one line (`config/meters/x.xml line 12: <message>`) so CLIs and the Dagster UI can show it
    without a traceback.
    """

    def __init__(self, path: Path | str | None, line: int | None, message: str) -> None:
        # All three go to Exception.args so the error survives pickling between Dagster processes.
        super().__init__(path, line, message)
        self.path = Path(path) if path is not None else None
        self.line = line
        self.message = message

    def __str__(self) -> str:
        if self.path is None:
            return self.message
        where = _display(self.path)
        if self.line is not None:
            where += f" line {self.line}"
        return f"{where}: {self.message}"
