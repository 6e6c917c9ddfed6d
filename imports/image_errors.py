"""Plain-English explanations of why Amazon WorkSpaces refused to import a BYOL image.

When an import ends in state ERROR, ``DescribeWorkspaceImages`` reports an ``ErrorCode``, an
``ErrorMessage`` and a list ``ErrorDetails`` of ``{"ErrorCode": ..., "ErrorMessage": ...}``. Each
detail code is a value of botocore's enum ``WorkspaceImageErrorDetailCode``. This module tells the
requester, for each code, what is wrong on the source VM and what to change before creating a new
AMI, and where AWS says so.

Where the facts come from, code by code (``CHECKS``):
- AWS's "Common error messages and their solutions" for BYOL imports (``COMMON_ERRORS_URL``), whose
  sections are anchored by the codes themselves;
- AWS's "List of SysPrep error messages and error fixes" (``SYSPREP_ERRORS_URL``);
- AWS's BYOL checker (``BYOL_CHECKER_URL``, now called the Image Compatibility Checker), whose
  tests report some of these codes with their limits: PowerShell 4.0, free space 10 GB (20 GB with
  Office), disk 80 GB, the local ``WorkSpaces_BYOL`` user, the licence rearm count.
For the rest AWS publishes nothing; their explanations say so and give only a reading of the name.

The tests check that ``CHECKS`` covers exactly the codes of the installed botocore, so a botocore
upgrade that adds a code fails until it is explained here.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NotRequired, TypedDict

COMMON_ERRORS_URL = "https://docs.aws.amazon.com/workspaces/latest/adminguide/windows-images-common-errors.html"
SYSPREP_ERRORS_URL = "https://docs.aws.amazon.com/workspaces/latest/adminguide/images-errors-sysprep.html"
BYOL_CHECKER_URL = (
    "https://docs.aws.amazon.com/workspaces/latest/adminguide/byol-windows-images.html"
    "#windows_images_run_byol_checker_script"
)

# Every ERROR needs a new AMI or a changed request: the same request again ends the same way.
NEXT_STEP = "revise"

# Codes fixed by changing the request (its ingestion process), not the VM.
REQUEST_CODES = frozenset({"ProtocolOSIncompatibility"})

NO_AWS_DESCRIPTION = "AWS publishes no description of this check."


@dataclass(frozen=True)
class Check:
    explanation: str
    source: str = ""  # the AWS page the explanation comes from; "" where AWS publishes nothing


def _common(anchor: str = "") -> str:
    return f"{COMMON_ERRORS_URL}#{anchor}" if anchor else COMMON_ERRORS_URL


def _undocumented(reading: str) -> Check:
    return Check(f"{NO_AWS_DESCRIPTION} Going by its name alone (not AWS's words): {reading}")


CHECKS: dict[str, Check] = {
    "OutdatedPowershellVersion": Check(
        "Windows PowerShell on the VM is older than version 4.0, the lowest version AWS's BYOL checker accepts. "
        "Install Windows PowerShell 4.0 or later, restart, and run the checker again before creating the AMI.",
        BYOL_CHECKER_URL,
    ),
    "OfficeInstalled": Check(
        "A standalone edition of Microsoft Office (a perpetual or volume-licensed one, such as Office 2016 or "
        "2019) is installed, and a BYOL import does not accept one. Uninstall it before creating the AMI; "
        "Microsoft 365 Apps may stay. If users need Office from AWS, choose it in the request instead.",
        _common("OfficeInstalled"),
    ),
    "PCoIPAgentInstalled": Check(
        "A Teradici PCoIP agent is installed on the VM, and the import needs a system without one. "
        "Uninstall it, restart, and create a new AMI.",
        _common("PCoIPAgentInstalled"),
    ),
    "WindowsUpdatesEnabled": Check(
        "The Windows Update service is still enabled, and the import needs it off. In services.msc set the "
        "startup type of Windows Update to Disabled and stop the service, restart, and create a new AMI.",
        _common("WindowsUpdatesEnabled"),
    ),
    "AutoMountDisabled": Check(
        "Windows is set not to mount new volumes automatically, and the import needs automount on. "
        "As an administrator run diskpart, enter 'automount enable', and create a new AMI.",
        _common("AutoMountDisabled"),
    ),
    "WorkspacesBYOLAccountNotFound": Check(
        "The VM has no local Windows user named WorkSpaces_BYOL, which AWS's BYOL checker requires. This is a "
        "user account on the VM, not your AWS account, so the same AMI can never pass: create the local user "
        "WorkSpaces_BYOL, add it to the local Administrators group, and create a new AMI.",
        BYOL_CHECKER_URL,
    ),
    "WorkspacesBYOLAccountDisabled": Check(
        "The local Windows user WorkSpaces_BYOL on the VM is disabled, and the import needs it enabled. It is a "
        "user account on the VM, not your AWS account (AWS's page links to the account setting, but the check "
        "looks at the VM), so the same AMI can never pass: enable the user, for example with "
        "'net user WorkSpaces_BYOL /active:yes' as an administrator, and create a new AMI.",
        _common("WorkspacesBYOLAccountDisabled"),
    ),
    "DHCPDisabled": Check(
        "A network adapter on the VM has a static IP address, and the import needs addresses assigned by DHCP. "
        "Set every adapter to obtain its IP address automatically, then create a new AMI.",
        _common("DHCPDisabled"),
    ),
    "DiskFreeSpace": Check(
        "Drive C: has too little free space. AWS's BYOL checker wants at least 10 GB free without Office and "
        "20 GB when the image is to get Office from AWS, and AWS's error page asks for 20 GB. Remove programs "
        "and files or run Disk Cleanup, then create a new AMI.",
        _common("DiskFreeSpace"),
    ),
    "AdditionalDrivesAttached": Check(
        "Windows sees drives besides C:, and a BYOL image may have C: only. Remove or disconnect every other "
        "drive, counting removable, network and virtual drives and CD/DVD drives or mounted ISO files, then "
        "create a new AMI.",
        _common(),
    ),
    "OSNotSupported": Check(
        "This Windows version or edition cannot be imported as a BYOL image: it must be a Windows 10 or "
        "Windows 11 release that AWS supports for BYOL. Rebuild the VM on a supported release.",
        _common("OSNotSupported"),
    ),
    "DomainJoined": Check(
        "The VM is joined to an Active Directory domain, and the import needs it unjoined. "
        "Move it to a workgroup, restart, and create a new AMI.",
        _common("DomainJoined"),
    ),
    "AzureDomainJoined": Check(
        "The VM is joined to Microsoft Entra ID (Azure AD), and the import needs it unjoined. Leave Entra ID, "
        "for example with 'dsregcmd /leave' as an administrator, restart, and create a new AMI.",
        _common("AzureDomainJoined"),
    ),
    "FirewallEnabled": Check(
        "Windows Defender Firewall is on for the public profile, which the import needs off; the check looks "
        "at the public profile only. Turn it off, for example with 'netsh advfirewall set publicprofile state "
        "off' as an administrator, then create a new AMI.",
        _common("FirewallEnabled"),
    ),
    "VMWareToolsInstalled": Check(
        "VMware Tools is installed, and the import needs a system without it. "
        "Uninstall it, restart, and create a new AMI.",
        _common("VMWareToolsInstalled"),
    ),
    "DiskSizeExceeded": Check(
        "The VM's system disk is larger than 80 GB, the most a BYOL import accepts (older AWS guidance said "
        "70 GB). Shrink the disk below 80 GB or rebuild the VM on a smaller disk, then create a new AMI.",
        _common("DiskSizeExceeded"),
    ),
    "IncompatiblePartitioning": Check(
        "The disk's partition style does not fit the Windows version: Windows 10, which boots with legacy BIOS, "
        "needs MBR partitions, and Windows 11, which boots with UEFI, needs GPT. Convert or rebuild the disk "
        "with the right style, then create a new AMI.",
        _common("IncompatiblePartitioning"),
    ),
    "PendingReboot": Check(
        "Windows is waiting for a restart to finish installing updates. "
        "Install all updates and restart until none is pending, then create a new AMI.",
        _common("PendingReboot"),
    ),
    "AutoLogonEnabled": Check(
        "Windows is set to sign a user in automatically, and the import needs automatic sign-in off. Set "
        "AutoAdminLogon to 0 under HKLM\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\\Winlogon, then create "
        "a new AMI.",
        _common("AutoLogonEnabled"),
    ),
    "RealTimeUniversalDisabled": Check(
        "Windows does not read the hardware clock as UTC, which AWS needs. Create the DWORD value "
        "RealTimeIsUniversal = 1 under HKLM\\SYSTEM\\CurrentControlSet\\Control\\TimeZoneInformation, restart, "
        "and create a new AMI.",
        _common("RealTimeUniversalDisabled"),
    ),
    "MultipleBootPartition": Check(
        "The disk has more than one bootable partition, and the import allows one. Remove the extra boot "
        "entries (msconfig, Boot tab), or repair the boot record with 'bootrec /fixmbr' from Windows recovery, "
        "then create a new AMI.",
        _common("MultipleBootPartition"),
    ),
    "Requires64BitOS": Check(
        "The VM runs 32-bit Windows, and a BYOL image must be 64-bit. Rebuild the VM with 64-bit Windows.",
        _common("Requires64BitOS"),
    ),
    "ZeroRearmCount": Check(
        "Windows on the VM has no licence rearms left (a rearm count of 0), and AWS's BYOL checker requires at "
        "least one. Check the count with 'cscript C:\\Windows\\System32\\slmgr.vbs /dlv', start again from a VM "
        "whose count is above 0, such as a fresh installation, and create a new AMI from it.",
        BYOL_CHECKER_URL,
    ),
    "InPlaceUpgrade": Check(
        "Windows on the VM was upgraded in place from an earlier version, which the import does not accept. "
        "Install Windows afresh on a new VM (cumulative and security updates are fine), set it up again, and "
        "create a new AMI.",
        _common("InPlaceUpgrade"),
    ),
    "AntiVirusInstalled": Check(
        "Antivirus software other than Microsoft Defender is installed, and the import needs it removed. "
        "Uninstall it (AWS's BYOL checker names the product it found), then create a new AMI.",
        _common("AntiVirusInstalled"),
    ),
    "UEFINotSupported": Check(
        "The VM runs Windows 10 and boots with UEFI, but a Windows 10 BYOL image must boot with legacy BIOS "
        "(it is Windows 11 that needs UEFI). Rebuild the Windows 10 VM to boot with legacy BIOS from an MBR "
        "disk, then create a new AMI.",
        _common("UEFINotSupported"),
    ),
    "UnknownError": _undocumented(
        "AWS could not tell what went wrong. Read the AWS message shown with it and run AWS's BYOL checker on "
        "the VM; if every test passes, ask the portal admins to raise it with AWS Support."
    ),
    "AppXPackagesInstalled": Check(
        "Microsoft Store (AppX) packages are still installed for some users, which makes Sysprep fail. AWS "
        "removes such packages and retries on its own, so this failure means they must go by hand: remove them "
        "with Remove-AppxPackage, then create a new AMI.",
        f"{SYSPREP_ERRORS_URL}#AppXInstalled",
    ),
    "ReservedStorageInUse": Check(
        "Windows reserved storage is on, which blocks image preparation. After installing all updates and "
        "restarting, turn it off as an administrator with 'DISM.exe /Online /Set-ReservedStorageState "
        "/State:Disabled' (it refuses while updates are still being serviced: wait and try again), restart, "
        "and create a new AMI.",
        f"{SYSPREP_ERRORS_URL}#ReserveStorageInUse",
    ),
    "AdditionalDrivesPresent": _undocumented(
        "Windows sees drives other than C:. A BYOL image may have C: only (see AdditionalDrivesAttached), so "
        "remove or disconnect the others."
    ),
    "WindowsUpdatesRequired": _undocumented(
        "updates must be installed first. Install all available updates and restart until none is pending, "
        "then turn the Windows Update service off again (see WindowsUpdatesEnabled)."
    ),
    "SysPrepFileMissing": _undocumented(
        "a file that Sysprep needs is missing. Check that C:\\Windows\\System32\\Sysprep is intact, repair "
        "Windows (for example with 'sfc /scannow') or rebuild the VM."
    ),
    "UserProfileMissing": _undocumented(
        "Windows lists a user profile whose folder is missing. "
        "Delete that profile under System Properties, Advanced, User Profiles."
    ),
    "InsufficientDiskSpace": _undocumented(
        "there is not enough free disk space to prepare the image. "
        "Free up space on C: (see DiskFreeSpace for the amounts AWS's BYOL checker wants)."
    ),
    "EnvironmentVariablesPathMissingEntries": _undocumented(
        "the system PATH variable lacks standard Windows folders. Make sure it contains C:\\Windows\\System32 "
        "and C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\, then restart."
    ),
    "DomainAccountServicesFound": _undocumented(
        "some Windows services log on with a domain account. "
        "Change them to a local account such as Local System, or remove them."
    ),
    "InvalidIp": _undocumented(
        "an IP address setting on the VM is not acceptable. Check that every network adapter gets its address "
        "from DHCP and keeps no fixed address (see DHCPDisabled)."
    ),
    "RemoteDesktopServicesDisabled": _undocumented(
        "the Remote Desktop Services service is disabled. Set its startup type to Manual or Automatic."
    ),
    "WindowsModulesInstallerDisabled": _undocumented(
        "the Windows Modules Installer service is disabled. Set its startup type to Manual."
    ),
    "AmazonSsmAgentEnabled": _undocumented(
        "the Amazon SSM Agent service is running. Stop it and set its startup type to Disabled."
    ),
    "UnsupportedSecurityProtocol": _undocumented(
        "Windows is set up with security protocols the import cannot use. "
        "Check that TLS 1.2 is enabled and that no hardening policy turned it off."
    ),
    "MultipleUserProfiles": _undocumented(
        "the VM has more user profiles than the import allows. "
        "Delete the profiles you do not need under System Properties, Advanced, User Profiles."
    ),
    "StagedAppxPackage": _undocumented(
        "a Microsoft Store (AppX) package is staged but not installed for any user, which can make Sysprep fail. "
        "Remove it with Remove-AppxPackage -AllUsers, or its provisioned copy with Remove-AppxProvisionedPackage."
    ),
    "UnsupportedOsUpgrade": _undocumented(
        "Windows was moved to a newer feature release in a way the import does not support. "
        "Install the release you want afresh on a new VM."
    ),
    "InsufficientRearmCount": _undocumented(
        "Windows has too few licence rearms left. Check with 'cscript C:\\Windows\\System32\\slmgr.vbs /dlv' and "
        "start again from a VM with rearms left (see ZeroRearmCount)."
    ),
    "ProtocolOSIncompatibility": Check(
        "The streaming protocol of the chosen ingestion process does not support this image's Windows version, "
        "for example PCoIP with Windows 11. Nothing on the VM needs to change: revise this request with an "
        "ingestion process whose protocol suits the Windows version (for Windows 11 one ending in _WSP or "
        "_BYOP); the same AMI can be used.",
        _common(),
    ),
    "MemoryIntegrityIncompatibility": Check(
        "Memory integrity is on together with Credential Guard and locked in UEFI ('Enabled with UEFI lock'), "
        "so the import cannot switch it off, and turning it off in Windows Security alone leaves the lock in "
        "place. Follow Microsoft's steps to disable Credential Guard with UEFI lock, which clear the setting "
        "stored in UEFI, or build a VM without the lock, then create a new AMI.",
        _common(),
    ),
    "RestrictedDriveLetterInUse": Check(
        "Drive letter D: is in use, but WorkSpaces keeps D: for itself. Give that drive (a second partition, a "
        "DVD drive or a mapped drive) another letter in Disk Management or remove it, then create a new AMI.",
        _common(),
    ),
}

EXPLANATIONS: dict[str, str] = {code: check.explanation for code, check in CHECKS.items()}
SOURCES: dict[str, str] = {code: check.source for code, check in CHECKS.items()}

# For a code this module does not know yet; ``{code}`` is replaced with the code.
FALLBACK = (
    "The portal has no explanation yet for the check '{code}'. Read the AWS message shown next to it for what "
    "went wrong, and contact the portal admins if it does not make clear what to change."
)

MSG_NO_DETAILS = (
    "AWS could not import the image: {reason}. Read the AWS message below. Fix what it names on the source VM, "
    "run AWS's BYOL checker on the VM and create a new AMI, then revise this request with the new AMI (or with "
    "whatever else the message says to change). The revision goes back for approval."
)
MSG_FAILED_CHECKS = "AWS could not import the image: it failed {checks} ({codes})."
MSG_FIX_THE_VM = (
    " Each problem is explained below with what to change on the source VM. Fix them all on the VM, run AWS's "
    "BYOL checker (now called the Image Compatibility Checker) on it until every test passes, create a new AMI, "
    "then revise this request with the new AMI. The revision goes back for approval."
)
MSG_FIX_THE_REQUEST_ONLY = (
    " Nothing on the VM needs to change: revise this request with an ingestion process whose streaming protocol "
    "suits the image's Windows version; the same AMI can be used. The revision goes back for approval."
)
MSG_ALSO_FIX_THE_REQUEST = (
    " In the revision, also choose an ingestion process whose streaming protocol suits the image's Windows version."
)


class DetailExplanation(TypedDict):
    code: str
    aws_message: str
    explanation: str
    source: str
    documented: bool


class ImageErrorExplanation(TypedDict):
    message: str
    error_code: str
    aws_message: str
    details: list[DetailExplanation]
    next_step: str
    checker: NotRequired[str]


def explain(code: str) -> str:
    """What the error detail ``code`` means and what to fix, or the fallback naming the code."""
    return EXPLANATIONS.get(code) or FALLBACK.format(code=code)


def _explain_detail(detail: dict[str, str]) -> DetailExplanation:
    code = detail.get("ErrorCode", "")
    source = SOURCES.get(code, "")
    return {
        "code": code,
        "aws_message": detail.get("ErrorMessage", ""),
        "explanation": explain(code),
        "source": source,
        "documented": bool(source),
    }


def _summary(*, error_code: str, error_message: str, codes: Sequence[str]) -> str:
    if not codes:
        reason = error_message.strip().rstrip(".") or error_code or "AWS gave no reason"
        return MSG_NO_DETAILS.format(reason=reason)
    checks = "1 check" if len(codes) == 1 else f"{len(codes)} checks"
    message = MSG_FAILED_CHECKS.format(checks=checks, codes=", ".join(codes))
    if all(code in REQUEST_CODES for code in codes):
        return message + MSG_FIX_THE_REQUEST_ONLY
    message += MSG_FIX_THE_VM
    if any(code in REQUEST_CODES for code in codes):
        message += MSG_ALSO_FIX_THE_REQUEST
    return message


def explain_image_error(*, error_code: str, error_message: str, details: list[dict[str, str]]) -> ImageErrorExplanation:
    """A JSON-serialisable explanation of a failed import, from DescribeWorkspaceImages' error fields.

    ``details`` is AWS's ``ErrorDetails``: a list of ``{"ErrorCode": ..., "ErrorMessage": ...}``.
    """
    explained = [_explain_detail(detail) for detail in details]
    result: ImageErrorExplanation = {
        "message": _summary(error_code=error_code, error_message=error_message, codes=[d["code"] for d in explained]),
        "error_code": error_code,
        "aws_message": error_message,
        "details": explained,
        "next_step": NEXT_STEP,
    }
    if explained:
        result["checker"] = BYOL_CHECKER_URL
    return result
