"""The one exception the coverage importer raises for anything a user can fix."""


class CoverageError(Exception):
    """A coverage document that cannot be imported, with every problem found.

    ``errors`` holds ``(path, message)`` pairs. The path points into the
    document (``reps[3].time_zone``, ``territories[2].criteria.countries[1]``)
    so RevOps can go straight to the line to fix; all problems are reported at
    once rather than one per attempt.
    """

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        self.errors = list(errors)
        super().__init__(str(self))

    def __str__(self) -> str:
        return "\n".join(f"{path}: {message}" if path else message for path, message in self.errors)
