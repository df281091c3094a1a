"""The runbook engine's exceptions, one tree under watchtower.errors.WatchtowerError.

RunbookError
├── RunbookInvalid       a runbook file has problems (each one `file:line: problem`)
├── UnknownRunbook       no runbook has that id
├── ExpressionError      an expression is not allowed, or could not be evaluated (names it)
├── ParamError           a parameter's value does not match its declaration (names the parameter)
├── ActionError          an action's call failed (names the resource: `function 'image-api'`)
├── ExecutionNotFound    no execution has that id
└── Refused              the execution's state does not allow this now
    ├── SelfApproval     the person who started a run by hand cannot approve it alone
    └── ApprovalExpired  the approval request has expired; the run failed
"""

from __future__ import annotations

from watchtower.errors import WatchtowerError


class RunbookError(WatchtowerError):
    """Base of every error the runbook engine raises on purpose."""


class RunbookInvalid(RunbookError):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class UnknownRunbook(RunbookError, KeyError):
    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown runbook"


class ExpressionError(RunbookError):
    pass


class ParamError(RunbookError):
    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"parameter {name!r}: {problem}")
        self.name = name
        self.problem = problem


class ActionError(RunbookError):
    pass


class ExecutionNotFound(RunbookError, KeyError):
    def __str__(self) -> str:
        return f"no execution {self.args[0]!r}" if self.args else "no such execution"


class NotificationNotFound(RunbookError, KeyError):
    def __str__(self) -> str:
        return f"no stored notification {self.args[0]!r}" if self.args else "no such notification"


class Refused(RunbookError):
    pass


class SelfApproval(Refused):
    pass


class ApprovalExpired(Refused):
    pass
