"""Tables and API schemas. Importing this package registers every table on `metadata`."""

from sqlmodel import SQLModel

# Named constraints and indexes, so Alembic can alter and drop them on every backend.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = SQLModel.metadata

from core.models.answer import StoredAnswer  # noqa: E402
from core.models.api_key import ApiKey, Scope  # noqa: E402
from core.models.budget import Budget, BudgetHold, BudgetPeriod, BudgetScope, BudgetSpend  # noqa: E402
from core.models.job import Job  # noqa: E402
from core.models.job_batch import JobBatch, JobBatchLine, JobBatchRequest  # noqa: E402
from core.models.job_event import JobEvent  # noqa: E402
from core.models.job_item import JobItem  # noqa: E402
from core.models.job_states import JobAction, JobStatus, Priority  # noqa: E402
from core.models.usage_hour import UsageHour  # noqa: E402
from core.models.workflow import Workflow, WorkflowTag, WorkflowVersion  # noqa: E402

__all__ = [
    "ApiKey",
    "Budget",
    "BudgetHold",
    "BudgetPeriod",
    "BudgetScope",
    "BudgetSpend",
    "Job",
    "JobAction",
    "JobBatch",
    "JobBatchLine",
    "JobBatchRequest",
    "JobEvent",
    "JobItem",
    "JobStatus",
    "Priority",
    "Scope",
    "StoredAnswer",
    "UsageHour",
    "Workflow",
    "WorkflowTag",
    "WorkflowVersion",
    "metadata",
]
