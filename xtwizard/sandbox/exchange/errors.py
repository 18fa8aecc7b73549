"""The exception catalogue: every error a cmdlet or the move service raises, with the real exception names.

Cmdlet errors travel as OData error bodies whose `details[].message` is `ExId|ExceptionType|text`
(reference §3.4).  ExIds seen in real answers are used where known; the others are a stable hash of the
type name ([U]: real ExIds are per throw site, clients split on `|` and use the type and text).
"""

from __future__ import annotations

import hashlib

SERVER_FQDN = "NAMPR01A001DC01.NAMPR01A001.PROD.OUTLOOK.COM"

# Full type names (reference §2.9, landscape §B.1).
NOT_FOUND = "Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException"
AMBIGUOUS = "Microsoft.Exchange.Configuration.Tasks.ManagementObjectAmbiguousException"
ACCESS_DENIED = "Microsoft.Exchange.Configuration.Authorization.CmdletAccessDeniedException"
PARAMETER_BINDING = "System.Management.Automation.ParameterBindingException"
COMMAND_NOT_FOUND = "System.Management.Automation.CommandNotFoundException"
ALREADY_EXISTS = "Microsoft.Exchange.Data.Directory.ADObjectAlreadyExistsException"
PROXY_EXISTS = "Microsoft.Exchange.Management.Tasks.RecipientTaskException"  # [U]
DEHYDRATED = "Microsoft.Exchange.Management.Tasks.InvalidOperationInDehydratedContextException"
TASK = "Microsoft.Exchange.Configuration.Tasks.TaskException"  # [U] generic validation failure
DATA_VALIDATION = "Microsoft.Exchange.Data.DataValidationException"
MIGRATION_PERMANENT = "Microsoft.Exchange.Migration.MigrationPermanentException"
MIGRATION_TRANSIENT = "Microsoft.Exchange.Migration.MigrationTransientException"
MAX_CONCURRENT = "Microsoft.Exchange.Migration.MaximumConcurrentMigrationLimitExceededException"
KEY_VAULT = "Microsoft.Exchange.Migration.KeyVaultFailureErrorException"
ODATA = "Microsoft.Exchange.Admin.OData.Core.ODataServiceException"

KNOWN_EXIDS = {NOT_FOUND: "Ex6F9304", AMBIGUOUS: "Ex9E65A2", ACCESS_DENIED: "Ex5E8EA4"}

# The move service's per-user failures (reference §2.9).  Short name -> namespace.
MRS_FAILURES = {
    "CrossTenantMigrationWithoutLicensePermanentException": "Microsoft.Exchange.Migration",
    "MailboxNotInCrossTenantMigrationScopeException": "Microsoft.Exchange.MailboxReplicationService",
    "AuxArchiveNotFoundInTargetRecipientException": "Microsoft.Exchange.MailboxReplicationService",
    "NotAcceptedDomainException": "Microsoft.Exchange.MailboxReplicationService",
    "SourceAuxArchiveIsProvisionedDuringCrossTenantMovePermanentException":
        "Microsoft.Exchange.MailboxReplicationService",
    "UserDuplicateInOtherBatchException": "Microsoft.Exchange.Migration",
    "MissingExchangeGuidException": "Microsoft.Exchange.MailboxReplicationService",
    "SourceMailboxAlreadyBeingMovedPermanentException": "Microsoft.Exchange.MailboxReplicationService",
    "MigrationPermanentException": "Microsoft.Exchange.Migration",
    "MigrationRecipientNotFoundException": "Microsoft.Exchange.Migration",
    "MigrationMRSPermanentException": "Microsoft.Exchange.Migration",
    "MigrationTransientException": "Microsoft.Exchange.Migration",
    "KeyVaultFailureErrorException": "Microsoft.Exchange.Migration",
}


def exid(exception_type: str) -> str:
    known = KNOWN_EXIDS.get(exception_type)
    if known:
        return known
    return "Ex" + hashlib.sha1(exception_type.encode()).hexdigest()[:6].upper()


class CmdletError(Exception):
    """A cmdlet failed: becomes an OData error body with `ExId|type|text` in details (reference §3.4)."""

    def __init__(self, exception_type: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.exception_type = exception_type
        self.message = message
        self.status = status


def not_found(identity: str) -> CmdletError:
    return CmdletError(NOT_FOUND, f"The operation couldn't be performed because object '{identity}' couldn't be "
                                  f"found on '{SERVER_FQDN}'.")


def ambiguous(identity: str) -> CmdletError:
    return CmdletError(AMBIGUOUS, f"The operation couldn't be performed because object: '{identity}' matches "
                                  "multiple entries.")


def unknown_parameter(name: str) -> CmdletError:
    return CmdletError(PARAMETER_BINDING, f"A parameter cannot be found that matches parameter name '{name}'.")


def missing_parameters(names: list[str]) -> CmdletError:
    return CmdletError(PARAMETER_BINDING, "Cannot process command because of one or more missing mandatory "
                                          f"parameters: {' '.join(names)}.")


def name_in_use(name: str) -> CmdletError:
    return CmdletError(ALREADY_EXISTS, f"The name \"{name}\" is already being used. Please try another name.")


class MoveFailure:
    """A per-user failure of the move service, as Get-MigrationUser / Get-MoveRequestStatistics show it."""

    def __init__(self, short_type: str, message: str, side: str = "Target") -> None:
        self.short_type = short_type
        self.message = message
        self.side = side

    @property
    def full_type(self) -> str:
        return f"{MRS_FAILURES.get(self.short_type, 'Microsoft.Exchange.Migration')}.{self.short_type}"

    def to_json(self) -> dict[str, str]:
        return {"type": self.short_type, "message": self.message, "side": self.side}
