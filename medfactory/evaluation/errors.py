"""Errors of the evaluation commands a user can fix; light, so the CLI imports them at once."""


class ExamError(RuntimeError):
    """The exam cannot run; the message names the file, line or dataset, and what to do."""


class JudgeError(RuntimeError):
    """Rubric grading cannot run; the message names the file, line or option, and what to do."""
