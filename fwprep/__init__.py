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

from typing import TYPE_CHECKING

from fwprep._clock import Clock
from fwprep._lazy import on_first_use as _on_first_use
from fwprep._protocol import Request
from fwprep._version import __version__
from fwprep.client import FireworksClient, ItemLike
from fwprep.errors import (
    ApiError,
    AuthenticationError,
    BadRequestError,
    CertificateError,
    ClientClosedError,
    ConfigError,
    ConflictError,
    ConnectError,
    FwprepError,
    InputError,
    InvalidModelError,
    InvalidPrecisionError,
    NotFoundError,
    PermissionDeniedError,
    PreparationFailedError,
    ProxyAuthenticationError,
    RateLimitError,
    ReadError,
    RequestTimeoutError,
    ServerError,
    TransportError,
    UnexpectedResponseError,
    WaitTimeoutError,
)
from fwprep.exit_codes import ExitCode
from fwprep.limits import AdaptiveConfig, AdaptiveRateLimiter, FixedRateLimiter, RateLimiter
from fwprep.listing import ModelListing
from fwprep.models import Model, ModelStatus, PrepareItem, PrepareOutcome
from fwprep.names import ModelRef
from fwprep.precision import Precision
from fwprep.retry import RetryBudget, RetryPolicy, set_testing
from fwprep.transport import AiohttpTransport, Response, Transport
from fwprep.waiting import Waiter, WaitOutcome

if TYPE_CHECKING:  # imported on first use (see __getattr__): a client needs none of them
    from fwprep.batch import (
        BatchOptions,
        BatchRunner,
        BatchSummary,
        Record,
        Shard,
        iter_batch,
        run_batch,
    )

_ON_FIRST_USE = {
    **dict.fromkeys(
        (
            "BatchOptions",
            "BatchRunner",
            "BatchSummary",
            "Record",
            "Shard",
            "iter_batch",
            "run_batch",
        ),
        "fwprep.batch",
    ),
    "emulator": "fwprep.emulator",
}

__all__ = [
    "AdaptiveConfig",
    "AdaptiveRateLimiter",
    "AiohttpTransport",
    "ApiError",
    "AuthenticationError",
    "BadRequestError",
    "BatchOptions",
    "BatchRunner",
    "BatchSummary",
    "CertificateError",
    "ClientClosedError",
    "Clock",
    "ConfigError",
    "ConflictError",
    "ConnectError",
    "ExitCode",
    "FireworksClient",
    "FixedRateLimiter",
    "FwprepError",
    "InputError",
    "InvalidModelError",
    "InvalidPrecisionError",
    "ItemLike",
    "Model",
    "ModelListing",
    "ModelRef",
    "ModelStatus",
    "NotFoundError",
    "PermissionDeniedError",
    "Precision",
    "PreparationFailedError",
    "PrepareItem",
    "PrepareOutcome",
    "ProxyAuthenticationError",
    "RateLimitError",
    "RateLimiter",
    "ReadError",
    "Record",
    "Request",
    "RequestTimeoutError",
    "Response",
    "RetryBudget",
    "RetryPolicy",
    "ServerError",
    "Shard",
    "Transport",
    "TransportError",
    "UnexpectedResponseError",
    "WaitOutcome",
    "WaitTimeoutError",
    "Waiter",
    "__version__",
    "iter_batch",
    "run_batch",
    "set_testing",
]


# The batch runner, the progress display and the emulator's server (aiohttp's web side) load
# when first used: an application that only awaits the client does not pay for them.
__getattr__, __dir__ = _on_first_use(__name__, globals(), _ON_FIRST_USE)
