"""Plain-English explanations of why Amazon WorkSpaces refused to import a BYOL image.

When an import ends in state ERROR, ``DescribeWorkspaceImages`` reports an ``ErrorCode``, an
``ErrorMessage`` and a list ``ErrorDetails`` of ``{"ErrorCode": ..., "ErrorMessage": ...}``. Each
detail code is a value of botocore's enum ``WorkspaceImageErrorDetailCode``, and most of them are
checks that the BYOL checker (the BYOLChecker PowerShell script AWS provides) also runs on the
source VM. This module tells the requester, for each code, what is wrong and what to change on the
VM before creating a new AMI.

Facts are taken from the WorkSpaces Administration Guide, "Bring Your Own Windows desktop
licenses": https://docs.aws.amazon.com/workspaces/latest/adminguide/byol-windows-images.html
and from the API reference of ErrorDetails:
https://docs.aws.amazon.com/workspaces/latest/api/API_ErrorDetails.html

The tests check that ``EXPLANATIONS`` covers exactly the codes of the installed botocore, so a
botocore upgrade that adds a code fails until it is explained here.
"""

from collections.abc import Sequence
from typing import TypedDict

# Codes that are about the AWS account, not the image: nothing on the VM can fix them.
ACCOUNT_CODES = frozenset({"WorkspacesBYOLAccountNotFound", "WorkspacesBYOLAccountDisabled"})

EXPLANATIONS: dict[str, str] = {
    "OutdatedPowershellVersion": (
        "The version of Windows PowerShell on the VM is too old for the WorkSpaces import tools. "
        "Update it to Windows PowerShell 5.1 (part of Windows Management Framework 5.1), restart, and run the "
        "BYOL checker again before creating the AMI."
    ),
    "OfficeInstalled": (
        "Microsoft Office is already installed on the image. Uninstall it before creating the AMI, and choose "
        "Office in the request instead if users need it."
    ),
    "PCoIPAgentInstalled": (
        "A PCoIP agent (Teradici or HP Anyware) is installed on the VM, and WorkSpaces installs its own. "
        "Remove it in Apps and Features, restart, and create a new AMI."
    ),
    "WindowsUpdatesEnabled": (
        "Windows Update is turned on, so Windows could start installing updates while WorkSpaces prepares the "
        "image. Turn it off by setting the Windows Update service to Disabled before creating the AMI."
    ),
    "AutoMountDisabled": (
        "Automatic mounting of new disks is turned off, so Windows would not bring the user volume online. "
        "Turn it back on by running diskpart as an administrator and typing 'automount enable'."
    ),
    "WorkspacesBYOLAccountNotFound": (
        "The AWS account is not set up for bring-your-own-license images, so nothing is wrong with your VM. "
        "Ask the portal admins to enable BYOL for the account and Region, then ask for a retry."
    ),
    "WorkspacesBYOLAccountDisabled": (
        "Bring-your-own-license images are switched off for the AWS account in this Region, which is not a "
        "problem with your VM. Ask the portal admins to turn BYOL back on, then ask for a retry."
    ),
    "DHCPDisabled": (
        "A network adapter on the VM has a fixed IP address instead of getting one automatically. "
        "Set every adapter to obtain its IP address and DNS server automatically (DHCP) before creating the AMI."
    ),
    "DiskFreeSpace": (
        "The system drive (C:) has less than 20 GB of free space, which the import needs to prepare the image. "
        "Free up space by removing unneeded programs and files or running Disk Cleanup, then create a new AMI."
    ),
    "AdditionalDrivesAttached": (
        "More than one disk is attached to the VM, but a BYOL image must consist of the system drive alone. "
        "Detach every other disk, move anything you need onto C:, and create the AMI again."
    ),
    "OSNotSupported": (
        "This version or edition of Windows cannot be imported as a BYOL image. "
        "Rebuild the VM on a supported 64-bit Windows 10 or 11 Enterprise or Pro release listed in the AWS guide."
    ),
    "DomainJoined": (
        "The VM is joined to an Active Directory domain, and WorkSpaces joins each WorkSpace to the domain itself. "
        "Remove it from the domain (move it to a workgroup), restart, and create a new AMI."
    ),
    "AzureDomainJoined": (
        "The VM is joined to Microsoft Entra ID (Azure AD), which the import does not allow. "
        "Disconnect it (for example with 'dsregcmd /leave' as an administrator), restart, and create a new AMI."
    ),
    "FirewallEnabled": (
        "Windows Firewall is turned on, and it would block the WorkSpaces management traffic. "
        "Turn it off for the domain, private and public profiles before creating the AMI."
    ),
    "VMWareToolsInstalled": (
        "VMware Tools is still installed from when the VM ran on VMware, and its drivers conflict with AWS. "
        "Uninstall it, restart, and create a new AMI."
    ),
    "DiskSizeExceeded": (
        "The system drive is larger than the 70 GB that a BYOL image may have. "
        "Shrink the volume to 70 GB or less (or rebuild the VM on a smaller disk) before creating the AMI."
    ),
    "IncompatiblePartitioning": (
        "The disk's partition layout does not suit the way the VM starts up (for example a GPT disk on a BIOS VM, "
        "or an MBR disk on a UEFI VM). Rebuild the VM with the disk layout and boot mode the AWS guide gives "
        "for your Windows version."
    ),
    "PendingReboot": (
        "Windows is waiting for a restart to finish installing updates or software. "
        "Restart the VM, repeating until the BYOL checker no longer reports a pending restart, then create the AMI."
    ),
    "AutoLogonEnabled": (
        "Windows is set to sign a user in automatically at start-up. "
        "Turn automatic sign-in off (set AutoAdminLogon to 0 in the Winlogon registry key) before creating the AMI."
    ),
    "RealTimeUniversalDisabled": (
        "Windows reads the hardware clock as local time, but AWS keeps it in UTC, so the clock would be wrong. "
        "Set the registry value RealTimeIsUniversal to 1 (DWORD) under the TimeZoneInformation key, restart, "
        "and create a new AMI."
    ),
    "MultipleBootPartition": (
        "The disk has more than one partition that Windows can start from. "
        "Remove the extra boot partitions so that only one remains, then create a new AMI."
    ),
    "Requires64BitOS": (
        "The VM runs a 32-bit edition of Windows, and WorkSpaces only accepts 64-bit Windows. "
        "Rebuild the VM from 64-bit installation media."
    ),
    "ZeroRearmCount": (
        "Windows has no licence 'rearm' attempts left, which Sysprep needs to generalize the image, and the count "
        "cannot be reset. Build a new VM from fresh installation media and avoid running Sysprep on it yourself."
    ),
    "InPlaceUpgrade": (
        "The VM was upgraded in place from an earlier version of Windows, which WorkSpaces cannot import. "
        "Install Windows afresh on a new VM instead of upgrading, then set it up again."
    ),
    "AntiVirusInstalled": (
        "Antivirus software other than the built-in Microsoft Defender is installed and can block the import. "
        "Uninstall it before creating the AMI; you can install it on the WorkSpaces afterwards."
    ),
    "UEFINotSupported": (
        "The VM starts up with UEFI, which is not supported for this Windows version or ingestion process. "
        "Rebuild it to start with legacy BIOS, or check with the AWS guide which boot mode your Windows version needs."
    ),
    "UnknownError": (
        "AWS hit a problem it could not put a name to while checking the image. "
        "Read the AWS message shown next to it, run the BYOL checker on the VM, and contact the portal admins "
        "if everything passes."
    ),
    "AppXPackagesInstalled": (
        "Some Microsoft Store (AppX) apps are installed for a single user only, which makes Sysprep fail. "
        "Remove those apps for that user with Remove-AppxPackage, or sign in as them and uninstall the apps."
    ),
    "ReservedStorageInUse": (
        "Windows reserved storage is turned on and holding space for updates, which blocks image preparation. "
        "Turn it off with 'DISM /Online /Set-ReservedStorageState /State:Disabled', restart, and create a new AMI."
    ),
    "AdditionalDrivesPresent": (
        "Windows can see drives besides C:, such as a second partition, a mapped network drive or a mounted ISO. "
        "Remove or disconnect them so that only C: remains, then create a new AMI."
    ),
    "WindowsUpdatesRequired": (
        "Windows is missing updates that must be installed before WorkSpaces can prepare the image. "
        "Install all available updates and restart, then turn Windows Update off again before creating the AMI."
    ),
    "SysPrepFileMissing": (
        "Files that Sysprep needs are missing from the Windows folder (for example in C:\\Windows\\System32\\Sysprep). "
        "Repair Windows (for example with 'sfc /scannow') or rebuild the VM, then create a new AMI."
    ),
    "UserProfileMissing": (
        "Windows lists a user profile whose folder is missing or damaged, which makes Sysprep fail. "
        "Delete that profile under System Properties, User Profiles (or remove its leftover registry entry)."
    ),
    "InsufficientDiskSpace": (
        "There is not enough free disk space for WorkSpaces to finish preparing the image. "
        "Delete unneeded files and programs, empty the Recycle Bin and run Disk Cleanup before creating the AMI."
    ),
    "EnvironmentVariablesPathMissingEntries": (
        "The system PATH variable lacks standard Windows folders such as %SystemRoot%\\system32 and the "
        "WindowsPowerShell folder. Add them back under System Properties, Environment Variables, then create a new AMI."
    ),
    "DomainAccountServicesFound": (
        "Some Windows services run under a domain user account, which will not exist once the image is prepared. "
        "Change them to a built-in account such as Local System, or remove them, before creating the AMI."
    ),
    "InvalidIp": (
        "The VM's network settings hold an IP address WorkSpaces cannot use, such as a fixed address or one in the "
        "ranges reserved for its management network. Remove fixed addresses and let every adapter use DHCP."
    ),
    "RemoteDesktopServicesDisabled": (
        "The Remote Desktop Services service is disabled, and WorkSpaces needs it. "
        "Set its startup type back to Manual or Automatic in the Services console before creating the AMI."
    ),
    "WindowsModulesInstallerDisabled": (
        "The Windows Modules Installer service is disabled, so Windows cannot install the components the import "
        "adds. Set its startup type to Manual in the Services console before creating the AMI."
    ),
    "AmazonSsmAgentEnabled": (
        "The Amazon SSM Agent is installed and running on the VM, and it gets in the way of the import. "
        "Stop the service and set it to Disabled (or uninstall the agent) before creating the AMI."
    ),
    "UnsupportedSecurityProtocol": (
        "Windows is configured so it cannot use the secure connection protocol (TLS 1.2) that the import needs. "
        "Turn TLS 1.2 back on by undoing the hardening setting or policy that switched it off."
    ),
    "MultipleUserProfiles": (
        "The VM has more than one user profile, and the import expects only the account you prepared it with. "
        "Delete the other profiles under System Properties, User Profiles before creating the AMI."
    ),
    "StagedAppxPackage": (
        "A Microsoft Store (AppX) app is staged on the VM but not installed for any user, which makes Sysprep fail. "
        "Remove it with Remove-AppxPackage -AllUsers, or its provisioned copy with Remove-AppxProvisionedPackage."
    ),
    "UnsupportedOsUpgrade": (
        "Windows was moved to a newer feature version (for example Windows 11 23H2 to 24H2), which is not supported. "
        "Install the Windows version you want afresh on a new VM; ordinary monthly updates are fine."
    ),
    "InsufficientRearmCount": (
        "Windows has too few licence 'rearm' attempts left for Sysprep to prepare the image. "
        "Build a new VM from fresh installation media and do not run Sysprep on it before importing."
    ),
    "ProtocolOSIncompatibility": (
        "The streaming protocol of the chosen ingestion process does not work with this Windows version (for "
        "example PCoIP with Windows 11). Nothing needs changing on the VM: ask for a retry with a matching process."
    ),
    "MemoryIntegrityIncompatibility": (
        "Memory integrity (Core isolation in Windows Security) is turned on, and WorkSpaces cannot run with it. "
        "Turn it off under Windows Security, Device security, Core isolation, restart, and create a new AMI."
    ),
    "RestrictedDriveLetterInUse": (
        "A drive letter that WorkSpaces keeps for itself, such as D: for the user volume, is already in use. "
        "Give that drive (often a DVD drive) another letter in Disk Management or remove it, then create a new AMI."
    ),
}

# For a code this module does not know yet; ``{code}`` is replaced with the code.
FALLBACK = (
    "The portal has no explanation yet for the check '{code}'. Read the AWS message shown next to it for what "
    "went wrong, and contact the portal admins if it does not make clear what to change."
)


class DetailExplanation(TypedDict):
    code: str
    aws_message: str
    explanation: str


class ImageErrorExplanation(TypedDict):
    message: str
    error_code: str
    aws_message: str
    details: list[DetailExplanation]


def explain(code: str) -> str:
    """What the error detail ``code`` means and what to fix, or the fallback naming the code."""
    return EXPLANATIONS.get(code) or FALLBACK.format(code=code)


def _summary(*, error_code: str, error_message: str, codes: Sequence[str]) -> str:
    if not codes:
        reason = error_message.strip().rstrip(".") or error_code or "AWS gave no reason"
        return (
            f"AWS could not import the image: {reason}. Read the AWS message below, fix the problem on the source "
            "VM, run the BYOL checker on it, and create a new AMI; then ask for a retry with the new AMI, or ask "
            "for a retry once the problem is fixed if it was not in the image."
        )
    checks = "1 check" if len(codes) == 1 else f"{len(codes)} checks"
    message = f"AWS could not import the image: it failed {checks} ({', '.join(codes)})."
    if all(code in ACCOUNT_CODES for code in codes):
        return (
            f"{message} The problem is with the AWS account, not your image: the portal admins must fix it, and "
            "then you can ask for a retry with the same AMI."
        )
    message += (
        " Each problem is explained below with what to change on the source VM. Fix them all, run the BYOL "
        "checker on the VM, create a new AMI from it and ask for a retry with the new AMI."
    )
    if any(code in ACCOUNT_CODES for code in codes):
        message += " Some problems are with the AWS account, not the image: the portal admins must fix those first."
    return message


def explain_image_error(*, error_code: str, error_message: str, details: list[dict[str, str]]) -> ImageErrorExplanation:
    """A JSON-serialisable explanation of a failed import, from DescribeWorkspaceImages' error fields.

    ``details`` is AWS's ``ErrorDetails``: a list of ``{"ErrorCode": ..., "ErrorMessage": ...}``.
    """
    explained: list[DetailExplanation] = [
        {
            "code": detail.get("ErrorCode", ""),
            "aws_message": detail.get("ErrorMessage", ""),
            "explanation": explain(detail.get("ErrorCode", "")),
        }
        for detail in details
    ]
    codes = [d["code"] for d in explained]
    return {
        "message": _summary(error_code=error_code, error_message=error_message, codes=codes),
        "error_code": error_code,
        "aws_message": error_message,
        "details": explained,
    }
