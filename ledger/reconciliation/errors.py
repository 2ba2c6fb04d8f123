"""Why an import is refused: always the line and the problem, never a traceback."""

from __future__ import annotations

from onetrip.errors import NotFound, ValidationFailed


class ImportRefused(ValidationFailed):
    """The file cannot be imported as it is; nothing of it was stored."""

    code = "import_invalid_line"
    title = "The file cannot be imported"


def bad_line(line: int, problem: str, *, code: str = "import_invalid_line") -> ImportRefused:
    return ImportRefused(
        f"line {line}: {problem}; nothing was imported",
        code=code,
        errors=[{"field": f"line {line}", "message": problem}],
    )


def bad_file(problem: str, *, code: str, field: str = "file") -> ImportRefused:
    return ImportRefused(
        f"{problem}; nothing was imported",
        code=code,
        errors=[{"field": field, "message": problem}],
    )


class ProfileNotFound(NotFound):
    code = "profile_not_found"
    title = "No such mapping profile"


class ImportNotFound(NotFound):
    code = "import_not_found"
    title = "No such import"
