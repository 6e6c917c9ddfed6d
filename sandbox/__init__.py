"""The local AWS sandbox: moto's server plus the WorkSpaces BYOL import operations it lacks.

A top-level package of its own, apart from the portal (no Django settings, no models): tests,
benchmarks and ``python -m sandbox`` start it, and the production image leaves it and moto out.
See PRODUCT.md section 11.
"""

from .client import control_sandbox
from .seed import (
    AUDIT_BUCKET,
    DEFAULT_REGION,
    ERROR_DETAILS_TAG,
    PARTNER_ACCOUNT_ID,
    SEED_IMAGES,
    SEED_TAG,
    UPDATE_AVAILABLE_TAG,
    seed_audit_bucket,
    seed_images,
)
from .server import DEFAULT_HOST, DEFAULT_IMPORT_DELAY, DEFAULT_PORT, SandboxHandle, start_sandbox

SANDBOX_ACCOUNT_ID = "123456789012"  # moto's default account

__all__ = [
    "AUDIT_BUCKET",
    "DEFAULT_HOST",
    "DEFAULT_IMPORT_DELAY",
    "DEFAULT_PORT",
    "DEFAULT_REGION",
    "ERROR_DETAILS_TAG",
    "PARTNER_ACCOUNT_ID",
    "SANDBOX_ACCOUNT_ID",
    "SEED_IMAGES",
    "SEED_TAG",
    "UPDATE_AVAILABLE_TAG",
    "SandboxHandle",
    "control_sandbox",
    "seed_audit_bucket",
    "seed_images",
    "start_sandbox",
]
