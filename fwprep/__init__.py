"""fwprep: prepare Fireworks AI models for deployment precisions, in bulk.

The asyncio client::

    import fwprep

    async with fwprep.FireworksClient() as client:      # FIREWORKS_API_KEY from the env
        await client.prepare_model("accounts/acme/models/ft-7", "fp8")

A whole manifest, with a report that makes it resumable::

    summary = await fwprep.run_batch("models.csv", resume=True)

Everything public is importable from this package; submodules are
implementation detail unless their docs say otherwise.
"""

from fwprep._version import __version__
from fwprep.batch import BatchRunner, BatchSummary, Record, Shard, iter_batch, run_batch
from fwprep.client import FireworksClient, ItemLike
from fwprep.errors import (
    ApiError,
    AuthenticationError,
    BadRequestError,
    ConfigError,
    ConflictError,
    ConnectError,
    ErrorBody,
    FwprepError,
    InputError,
    InvalidModelError,
    InvalidPrecisionError,
    NotFoundError,
    PermissionDeniedError,
    PreparationFailedError,
    RateLimitError,
    ReadError,
    RequestTimeoutError,
    ServerError,
    TransportError,
    UnexpectedResponseError,
    WaitTimeoutError,
    parse_error_body,
)
from fwprep.limits import AdaptiveRateLimiter, TokenBucket
from fwprep.models import Model, PrepareItem, PrepareOutcome, Status
from fwprep.names import ModelRef
from fwprep.precision import Precision
from fwprep.retry import RetryBudget, RetryPolicy, parse_retry_after, set_testing

__all__ = [
    "AdaptiveRateLimiter",
    "ApiError",
    "AuthenticationError",
    "BadRequestError",
    "BatchRunner",
    "BatchSummary",
    "ConfigError",
    "ConflictError",
    "ConnectError",
    "ErrorBody",
    "FireworksClient",
    "FwprepError",
    "InputError",
    "InvalidModelError",
    "InvalidPrecisionError",
    "ItemLike",
    "Model",
    "ModelRef",
    "NotFoundError",
    "PermissionDeniedError",
    "Precision",
    "PreparationFailedError",
    "PrepareItem",
    "PrepareOutcome",
    "RateLimitError",
    "ReadError",
    "Record",
    "RequestTimeoutError",
    "RetryBudget",
    "RetryPolicy",
    "ServerError",
    "Shard",
    "Status",
    "TokenBucket",
    "TransportError",
    "UnexpectedResponseError",
    "WaitTimeoutError",
    "__version__",
    "iter_batch",
    "parse_error_body",
    "parse_retry_after",
    "run_batch",
    "set_testing",
]
