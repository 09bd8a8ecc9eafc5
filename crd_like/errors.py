"""Invalid-input errors: every problem found in user input, with file, line and field.

This is the ``InvalidSpec`` branch of the project's error tree (see
``controller/errors.py`` for the rest). No I/O.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Issue:
    file: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        field = f" {self.field}:" if self.field else ""
        return f"{where}:{field} {self.message}"


class InvalidSpec(Exception):
    """One or more problems in user input. Nothing has been written when it is raised."""

    def __init__(self, issues: list[Issue]):
        self.issues = issues
        super().__init__("\n".join(str(i) for i in issues))
