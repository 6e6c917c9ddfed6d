"""Demo AMIs the sandbox puts into moto's EC2 so there is something to import, and the S3
bucket with Object Lock that the portal anchors its audit chains in.

Windows-ness: in moto 5.2.5 ``describe_images`` reports ``Platform: "windows"`` from the
``platform`` attribute of its ``Ami`` model, which is set only from the constructor argument,
the instance an image is created from, or the source of a copy. ``RegisterImage`` cannot set it
(nor can it on AWS, where the platform follows the billing product of the source), and moto's
``Ami`` always reports a single 15 GB volume and boot mode ``uefi``. So the seed builds ``Ami``
objects directly, in the same process as the server, with ``platform="windows"``, the volumes
and the boot mode a BYOL image really has (or none: ``BootMode`` is optional on AWS, see
https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/ami-boot-mode.html), which is also what lets
every pre-flight check of the portal (boot mode, encryption, root volume size, several volumes)
be exercised.
"""

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from moto.core import DEFAULT_ACCOUNT_ID
from moto.ec2 import ec2_backends
from moto.ec2.models.amis import Ami
from moto.s3.models import s3_backends

DEFAULT_REGION = "us-east-1"
SEED_TAG = "sandbox:seed"
# Comma-separated ErrorDetails codes: an import of an AMI carrying this tag ends in ERROR.
ERROR_DETAILS_TAG = "sandbox:error-details"
# An image imported from an AMI carrying this tag reports Updates.UpdateAvailable true once
# available, with the tag's value as the update's Description.
UPDATE_AVAILABLE_TAG = "sandbox:update-available"
LEGACY_BIOS, UEFI = "legacy-bios", "uefi"
# An account that "shares" a Windows AMI with the sandbox account, which may not import it.
PARTNER_ACCOUNT_ID = "111122223333"

_SEED_LOCK = threading.Lock()


@dataclass(frozen=True)
class SeedVolume:
    device: str
    size_gb: int
    encrypted: bool = False


@dataclass(frozen=True)
class SeedImage:
    ami_id: str
    name: str
    description: str
    windows: bool
    volumes: tuple[SeedVolume, ...]
    created: datetime
    # "legacy-bios", "uefi", "uefi-preferred", or None for an AMI without a boot mode parameter.
    boot_mode: str | None = LEGACY_BIOS
    owner_id: str | None = None  # None: the account being seeded
    tags: dict[str, str] = field(default_factory=dict)


def _root(size_gb: int, *, encrypted: bool = False) -> SeedVolume:
    return SeedVolume(device="/dev/sda1", size_gb=size_gb, encrypted=encrypted)


def _day(year: int, month: int, day: int) -> datetime:
    return datetime(year, month, day, 9, 30, tzinfo=UTC)


# Fixed ids ("05eed" = seed) so docs, demos and other tests can name them across restarts. The
# newest comes first in the request form's list of AMIs, so it is a clean Windows 11 image.
SEED_IMAGES: tuple[SeedImage, ...] = (
    SeedImage(
        ami_id="ami-05eed000000000001",
        name="win10-22h2-byol-2026-10",
        description="Windows 10 Enterprise 22H2 BYOL, sysprepped",
        windows=True,
        volumes=(_root(60),),
        created=_day(2026, 10, 5),
    ),
    SeedImage(
        ami_id="ami-05eed000000000002",
        name="win11-23h2-byol-2026-10",
        description="Windows 11 Enterprise 23H2 BYOL with an 80 GB root volume",
        windows=True,
        volumes=(_root(80),),
        created=_day(2026, 10, 12),
        boot_mode=UEFI,
    ),
    SeedImage(
        ami_id="ami-05eed000000000003",
        name="win10-22h2-byol-data-2026-09",
        description="Windows 10 Enterprise 22H2 BYOL with a second data volume and no boot mode set",
        windows=True,
        volumes=(_root(64), SeedVolume(device="xvdb", size_gb=100)),
        created=_day(2026, 9, 21),
        boot_mode=None,
        tags={UPDATE_AVAILABLE_TAG: "Updated WorkSpaces agent and drivers are available for this image."},
    ),
    SeedImage(
        ami_id="ami-05eed000000000004",
        name="win11-24h2-byol-encrypted-2026-09",
        description="Windows 11 Enterprise 24H2 BYOL on an encrypted root volume",
        windows=True,
        volumes=(_root(70, encrypted=True),),
        created=_day(2026, 9, 14),
        boot_mode=UEFI,
    ),
    SeedImage(
        ami_id="ami-05eed000000000005",
        name="win10-22h2-byol-office-2026-08",
        description="Windows 10 22H2 with Office installed: fails BYOL validation",
        windows=True,
        volumes=(_root(76),),
        created=_day(2026, 8, 30),
        tags={ERROR_DETAILS_TAG: "OfficeInstalled,DiskSizeExceeded"},
    ),
    SeedImage(
        ami_id="ami-05eed000000000006",
        name="al2023-build-agent-2026-10",
        description="Amazon Linux 2023 build agent: not a Windows image",
        windows=False,
        volumes=(SeedVolume(device="/dev/xvda", size_gb=30),),
        created=_day(2026, 10, 1),
        boot_mode=UEFI,
    ),
    SeedImage(
        ami_id="ami-05eed000000000007",
        name="win10-22h2-partner-shared-2026-10",
        description="Windows 10 22H2 image shared by a partner account: not ours to import",
        windows=True,
        volumes=(_root(60),),
        created=_day(2026, 10, 20),
        owner_id=PARTNER_ACCOUNT_ID,
    ),
    SeedImage(
        ami_id="ami-05eed000000000008",
        name="win11-24h2-byol-2026-11",
        description="Windows 11 Enterprise 24H2 BYOL, UEFI, sysprepped",
        windows=True,
        volumes=(_root(64),),
        created=_day(2026, 11, 16),
        boot_mode=UEFI,
    ),
    SeedImage(
        ami_id="ami-05eed000000000009",
        name="win10-22h2-byol-large-2026-07",
        description="Windows 10 Enterprise 22H2 BYOL on a 100 GB root volume",
        windows=True,
        volumes=(_root(100),),
        created=_day(2026, 7, 27),
    ),
)


class SeedAmi(Ami):
    """A moto ``Ami`` that reports the seed table's volumes instead of moto's fixed 15 GB one."""

    def __init__(self, ec2_backend: Any, image: SeedImage, *, zone: str) -> None:
        super().__init__(
            ec2_backend,
            image.ami_id,
            name=image.name,
            description=image.description,
            owner_id=image.owner_id,
            platform="windows" if image.windows else None,
            virtualization_type="hvm",
            architecture="x86_64",
            root_device_type="ebs",
            root_device_name=image.volumes[0].device,
            creation_date=image.created,
            boot_mode=image.boot_mode,  # type: ignore[arg-type]  # None: no boot mode parameter
            region_name=zone,
            tags={SEED_TAG: "true", **image.tags},
        )
        # Serialised by moto as PlatformDetails / UsageOperation, as AWS reports them:
        # https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/billing-info-fields.html
        self.platform_details = "Windows" if image.windows else "Linux/UNIX"
        self.usage_operation = "RunInstances:0002" if image.windows else "RunInstances"
        self._mappings = [self._mapping(volume, index, zone) for index, volume in enumerate(image.volumes)]

    def _mapping(self, volume: SeedVolume, index: int, zone: str) -> dict[str, Any]:
        snapshot_id = self.ebs_snapshot.id if index == 0 else self._extra_snapshot_id(volume, zone)
        return {
            "DeviceName": volume.device,
            "Ebs": {
                "SnapshotId": snapshot_id,
                "VolumeSize": volume.size_gb,
                "VolumeType": "gp3",
                "DeleteOnTermination": True,
                "Encrypted": volume.encrypted,
            },
        }

    def _extra_snapshot_id(self, volume: SeedVolume, zone: str) -> str:
        # Same dance as moto's Ami for its root snapshot, so describe_snapshots stays consistent.
        backend = self.ec2_backend
        ebs_volume = backend.create_volume(size=volume.size_gb, zone_name=zone)
        snapshot = backend.create_snapshot(
            ebs_volume.id, f"Data volume {volume.device} of {self.id}", self.owner_id, from_ami=self.id
        )
        backend.delete_volume(ebs_volume.id)
        return str(snapshot.id)

    @property
    def block_device_mappings(self) -> list[dict[str, Any]]:
        return self._mappings


def seed_images(*, account_id: str = DEFAULT_ACCOUNT_ID, region: str = DEFAULT_REGION) -> list[str]:
    """Put the demo AMIs into moto's EC2 for this account and region; safe to call again.

    Idempotent by AMI id: an image already there is left alone, one that was deregistered
    comes back. Returns the seed AMI ids.
    """
    backend = ec2_backends[account_id][region]
    with _SEED_LOCK:
        for image in SEED_IMAGES:
            if image.ami_id in backend.amis:
                continue
            ami = SeedAmi(backend, image, zone=f"{region}a")
            if image.owner_id not in (None, account_id):
                ami.launch_permissions.append({"UserId": account_id})
            backend.amis[image.ami_id] = ami
            if image.ami_id in backend.deleted_amis:
                backend.deleted_amis.remove(image.ami_id)
    return [image.ami_id for image in SEED_IMAGES]


# --- what ImportCustomWorkspaceImage can start from ----------------------------------------
# moto serves neither EC2's VM import tasks (DescribeImportImageTasks) nor EC2 Image Builder, so
# the sandbox knows these by name, in every account and region it serves, and answers the lookups
# a pre-flight makes of them itself (``vm_import.py``, ``image_builder.py``); each stands for one
# of the AMIs above, whose tags decide how an import from it ends.


_SEEDED_ON = _day(2026, 11, 16)


@dataclass(frozen=True)
class SeedSource:
    # The AMI the task or image version made; None while it has made none (still running, failed).
    ami_id: str | None
    # A VM import task's Status ("active", "completed", "deleting", "deleted"), or an image
    # version's Image Builder ImageStatus ("AVAILABLE", "BUILDING", "FAILED", ...).
    status: str = "completed"
    # DescribeImportImageTasks' StatusMessage / GetImage's state.reason; the sandbox's own words.
    message: str = ""
    # A running VM import task's Progress (percent, as a string on AWS).
    progress: str = ""
    # GetImage's osVersion, as Image Builder names it.
    os_version: str = ""
    created: datetime = _SEEDED_ON


# VM import tasks (ImageSource.Ec2ImportTaskId): one completed, one still running, one that failed.
SEED_IMPORT_TASKS: dict[str, SeedSource] = {
    "import-ami-0123456789abcdef0": SeedSource("ami-05eed000000000008", created=_day(2026, 11, 16)),
    "import-ami-0fedcba987654321f": SeedSource(
        None, status="active", message="converting", progress="39", created=_day(2026, 11, 20)
    ),
    "import-ami-0badc0ffee0000001": SeedSource(
        None,
        status="deleted",
        message="ClientError: The disk image is not a supported Windows version.",
        created=_day(2026, 11, 2),
    ),
}
# Image Builder image versions (ImageSource.ImageBuildVersionArn), by "<name>/<version>/<build>":
# arn:aws:imagebuilder:<region>:<account>:image/byol-windows-11/1.0.0/1
AVAILABLE = "AVAILABLE"
SEED_IMAGE_BUILDER_VERSIONS: dict[str, SeedSource] = {
    "byol-windows-11/1.0.0/1": SeedSource(
        "ami-05eed000000000008", status=AVAILABLE, os_version="Microsoft Windows 11", created=_day(2026, 11, 16)
    ),
    "byol-windows-11/1.1.0/1": SeedSource(
        None,
        status="BUILDING",
        message="The image is being built.",
        os_version="Microsoft Windows 11",
        created=_day(2026, 11, 25),
    ),
    "byol-windows-10-office/1.0.0/1": SeedSource(
        "ami-05eed000000000005", status=AVAILABLE, os_version="Microsoft Windows 10", created=_day(2026, 8, 30)
    ),
}


@dataclass(frozen=True)
class SeedInfrastructure:
    description: str
    instance_types: tuple[str, ...]
    created: datetime
    instance_profile: str = "EC2InstanceProfileForImageBuilder"


# Image Builder infrastructure configurations (InfrastructureConfigurationArn), by name:
# arn:aws:imagebuilder:<region>:<account>:infrastructure-configuration/byol-import
SEED_INFRASTRUCTURE_CONFIGURATIONS: dict[str, SeedInfrastructure] = {
    "byol-import": SeedInfrastructure(
        "Build instances for WorkSpaces BYOL imports", ("m5.large",), created=_day(2026, 10, 2)
    ),
    "byol-import-gpu": SeedInfrastructure(
        "Build instances for WorkSpaces BYOL imports of graphics images",
        ("g4dn.xlarge",),
        created=_day(2026, 10, 9),
    ),
}

# Created as an operator would create the real one: versioned, with Object Lock enabled (which
# only a new bucket can get), so the portal's compliance-mode anchors are locked.
# https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-lock-configure.html
AUDIT_BUCKET = "byol-portal-audit-anchors"


def seed_audit_bucket(*, account_id: str = DEFAULT_ACCOUNT_ID, region: str = DEFAULT_REGION) -> str:
    """Create the audit anchor bucket with Object Lock in moto's S3; safe to call again."""
    backend = s3_backends[account_id]["global"]
    with _SEED_LOCK:
        if AUDIT_BUCKET not in backend.buckets:
            backend.create_bucket(AUDIT_BUCKET, region)
            backend.put_bucket_versioning(AUDIT_BUCKET, "Enabled")
            backend.put_object_lock_configuration(AUDIT_BUCKET, lock_enabled=True)
    return AUDIT_BUCKET
