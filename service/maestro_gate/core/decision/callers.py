"""Who is calling: an authenticated principal, its roles, and the agent ids it may speak for.

Roles: `agent` asks for decisions for the subjects it is bound to; `approver` grants or rejects
approvals; `auditor` reads the audit trail and approvals; `policy_admin` changes bundles, the
enforcement mode and the emergency stop. `*` among the subjects means "not bound" (the
development credential); it never counts as being the requesting agent of an approval.
"""

from __future__ import annotations

from dataclasses import dataclass

AGENT = "agent"
APPROVER = "approver"
AUDITOR = "auditor"
POLICY_ADMIN = "policy_admin"
ROLES = (AGENT, APPROVER, AUDITOR, POLICY_ADMIN)
ANY_SUBJECT = "*"


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated caller; `method` says how (`api_key`, `jwt`, `dev_key`, `none`)."""

    principal: str
    roles: frozenset[str]
    subjects: frozenset[str] = frozenset()
    method: str = "api_key"

    @property
    def unbound(self) -> bool:
        """True when the caller may ask for any subject."""
        return ANY_SUBJECT in self.subjects

    def may_act_for(self, subject_id: str) -> bool:
        """True when the caller is an agent bound to `subject_id` (or not bound at all)."""
        return AGENT in self.roles and (self.unbound or subject_id in self.subjects)

    def authenticated_subjects(self, subject_id: str) -> list[str]:
        """The agent ids the gate vouches for in `input.state.caller` for this request."""
        if self.unbound:
            return [subject_id]
        return sorted(self.subjects)

    def is_requester(self, subject_id: str, requested_by: str | None) -> bool:
        """True when this caller is, or speaks for, the agent that asked for an approval."""
        return (
            self.principal == subject_id
            or self.principal == requested_by
            or subject_id in self.subjects
        )

    def state(self, subject_id: str) -> dict[str, object]:
        """`input.state.caller`: the principal and the subjects it authenticated as."""
        return {
            "principal": self.principal,
            "authenticated_subjects": self.authenticated_subjects(subject_id),
        }


ANONYMOUS = Caller(
    principal="anonymous", roles=frozenset(ROLES), subjects=frozenset({ANY_SUBJECT}), method="none"
)
"""The caller when authentication is off (embedded profile only)."""
