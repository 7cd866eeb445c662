"""Emulator configuration: credentials, lead fields, limits and the injectable clocks."""

from __future__ import annotations

import dataclasses
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

from reconcile.core.clock import utc_now

DEFAULT_USER_ID = "reconcile-emulator"
# A fixed, publicly known key: the emulator listens on loopback and holds test data only. Pass another
# one (MARKETO_ENCRYPTION_KEY in the environment of `reconcile emulator`) when binding to a shared interface.
DEFAULT_ENCRYPTION_KEY = "reconcile-emulator-secret-key-not-for-production"
# The REST face's LaunchPoint client, as publicly known as the demo key above.
DEFAULT_CLIENT_ID = "reconcile-emulator-client"
DEFAULT_CLIENT_SECRET = "reconcile-emulator-client-secret-not-for-production"
DEFAULT_TOKEN_TTL = 3600  # seconds; Marketo's access tokens live an hour

# The API names (case-sensitive) of Marketo's standard lead fields, as syncMultipleLeads accepts them
# in `attrName`. `Email` is always accepted as an attribute as well (it updates the lead's email).
DEFAULT_FIELDS: frozenset[str] = frozenset(
    {
        # person
        "Salutation", "FirstName", "MiddleName", "LastName", "Email", "Title", "Department",
        "DateofBirth", "Phone", "MobilePhone", "Fax", "Website", "LinkedInProfileURL",
        # address
        "Address", "City", "State", "PostalCode", "Country", "Region",
        # company
        "Company", "Industry", "AnnualRevenue", "NumberOfEmployees", "SICCode", "Site",
        "BillingStreet", "BillingCity", "BillingState", "BillingPostalCode", "BillingCountry",
        "MainPhone", "CompanyNotes",
        # lead management
        "LeadSource", "LeadStatus", "LeadScore", "LeadRole", "Rating", "Priority", "Urgency",
        "RelativeScore", "PersonNotes", "PersonType", "AcquisitionProgramId",
        # communication preferences
        "Unsubscribed", "UnsubscribedReason", "DoNotCall", "DoNotCallReason", "EmailInvalid",
        "EmailInvalidCause", "MarketingSuspended", "MarketingSuspendedReason", "BlackListed",
        "BlackListedCause",
        # attribution
        "OriginalSourceType", "OriginalSourceInfo", "OriginalReferrer", "OriginalSearchEngine",
        "OriginalSearchPhrase", "RegistrationSourceType", "RegistrationSourceInfo",
        # inferred data
        "InferredCompany", "InferredCountry", "InferredStateRegion", "InferredCity",
        "InferredPostalCode", "InferredMetropolitanArea", "InferredPhoneAreaCode", "AnonymousIP",
    }
)

DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024  # ample for 300 records with dozens of attributes each
REST_MAX_BODY_BYTES = 1024 * 1024  # Sync Leads payloads over 1 MB are refused with HTTP 413
MAX_URL_BYTES = 8 * 1024  # longer request targets are refused with HTTP 414
DEFAULT_PARTITION = "Default"  # every instance has this lead partition; leads go there without partitionName


@dataclasses.dataclass(frozen=True)
class EmulatorConfig:
    """Everything that shapes one emulated Marketo instance. Defaults are Marketo's own limits.

    The encryption key and the client secret stay out of `repr` (and so out of logs and tracebacks).
    """

    user_id: str = DEFAULT_USER_ID
    encryption_key: str = dataclasses.field(default=DEFAULT_ENCRYPTION_KEY, repr=False)
    client_id: str = DEFAULT_CLIENT_ID
    client_secret: str = dataclasses.field(default=DEFAULT_CLIENT_SECRET, repr=False)
    token_ttl: float = DEFAULT_TOKEN_TTL  # seconds an access token lives
    db_path: Path | None = None  # None: in memory only
    fields: frozenset[str] = DEFAULT_FIELDS
    extra_fields: frozenset[str] = frozenset()  # custom fields of this "instance"
    partitions: frozenset[str] = frozenset()  # lead partitions besides DEFAULT_PARTITION (the API user may use all)
    max_batch: int = 300  # records per call
    rate_calls: int = 100  # calls ...
    rate_window: float = 20.0  # ... per sliding window of this many seconds
    max_concurrency: int = 10  # calls in flight at once
    daily_quota: int = 50_000  # calls per day (REST's default), reset at midnight America/Chicago
    clock: Callable[[], datetime] = utc_now  # wall clock: timestamp freshness and the daily quota
    max_clock_skew: timedelta = timedelta(minutes=15)  # allowed requestTimestamp age / lead
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    monotonic: Callable[[], float] = time.monotonic  # clock of the rate window and the call log
    first_lead_id: int = 1_000_001
    # leads a new database starts with (the demo instance's, say); an existing database file is kept
    initial_leads: tuple = ()
    # static lists a new database starts with (by name); an existing list database is kept
    initial_lists: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.db_path is not None and not isinstance(self.db_path, Path):
            object.__setattr__(self, "db_path", Path(self.db_path))
        object.__setattr__(self, "fields", frozenset(self.fields))
        object.__setattr__(self, "extra_fields", frozenset(self.extra_fields))
        object.__setattr__(self, "partitions", frozenset(self.partitions))
        if not all(isinstance(name, str) and name.strip() for name in self.partitions):
            raise ValueError("a partition name must not be empty")
        if not self.user_id:
            raise ValueError("user_id must not be empty")
        if not self.encryption_key:
            raise ValueError("encryption_key must not be empty")
        if not self.client_id or not self.client_secret:
            raise ValueError("client_id and client_secret must not be empty")
        if not self.token_ttl > 0:
            raise ValueError(f"token_ttl must be positive, not {self.token_ttl!r}")
        for name in ("max_batch", "rate_calls", "max_concurrency", "daily_quota", "max_body_bytes",
                     "first_lead_id"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        if not self.rate_window > 0:
            raise ValueError(f"rate_window must be positive, not {self.rate_window!r}")
        if self.max_clock_skew < timedelta(0):
            raise ValueError("max_clock_skew must not be negative")

    @property
    def all_fields(self) -> frozenset[str]:
        """Attribute names syncMultipleLeads accepts (case-sensitive)."""
        return self.fields | self.extra_fields | {"Email"}

    @property
    def all_partitions(self) -> frozenset[str]:
        """The instance's lead partitions, the default one among them."""
        return self.partitions | {DEFAULT_PARTITION}

    @property
    def uses_demo_secrets(self) -> bool:
        """Whether anyone who read this code could sign SOAP requests or get a REST token."""
        return self.encryption_key == DEFAULT_ENCRYPTION_KEY or self.client_secret == DEFAULT_CLIENT_SECRET

    def now(self) -> datetime:
        """The injected wall clock, always timezone-aware (a naive value is taken as UTC)."""
        value = self.clock()
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value
