"""Running the move (issue 6 items 5-8): waves and migration batches, monitoring with every error explained,
the post-migration checklist, reports, and teardown of what the setup made.

`BatchEngine` takes the Workspace (or any `BatchContext`); pages and the headless commands drive the same engine.
"""

from .engine import BatchContext, BatchEngine, BatchProblem
from .model import (
    MAX_BATCH_USERS,
    STAGES,
    BatchOptions,
    BatchStatus,
    LaunchResult,
    Snapshot,
    UserStatus,
    Wave,
    WaveUser,
)

__all__ = ["MAX_BATCH_USERS", "STAGES", "BatchContext", "BatchEngine", "BatchOptions", "BatchProblem", "BatchStatus",
           "LaunchResult", "Snapshot", "UserStatus", "Wave", "WaveUser"]
