"""The WorkSpaces operations the sandbox answers itself, by name; every other one goes to moto."""

import json
from collections.abc import Callable
from typing import Any

from .custom_import import describe_custom_workspace_image_import, import_custom_workspace_image
from .rollout import (
    copy_workspace_image,
    create_workspace_bundle,
    delete_workspace_bundle,
    describe_workspace_bundles,
    describe_workspace_image_permissions,
    update_workspace_image_permission,
)
from .workspaces import (
    ImportSettings,
    WorkSpacesError,
    delete_workspace_image,
    describe_account,
    describe_tags,
    describe_workspace_images,
    import_workspace_image,
)

Handler = Callable[..., dict[str, Any]]

_HANDLERS: dict[str, Handler] = {
    "ImportWorkspaceImage": import_workspace_image,
    "DescribeWorkspaceImages": describe_workspace_images,
    "DescribeAccount": describe_account,
    "DescribeTags": describe_tags,
    "DeleteWorkspaceImage": delete_workspace_image,
    "ImportCustomWorkspaceImage": import_custom_workspace_image,
    "DescribeCustomWorkspaceImageImport": describe_custom_workspace_image_import,
    # The rollout after an import (rollout.py): moto lacks the first four and answers the
    # permission operations too loosely.
    "CreateWorkspaceBundle": create_workspace_bundle,
    "DescribeWorkspaceBundles": describe_workspace_bundles,
    "DeleteWorkspaceBundle": delete_workspace_bundle,
    "CopyWorkspaceImage": copy_workspace_image,
    "UpdateWorkspaceImagePermission": update_workspace_image_permission,
    "DescribeWorkspaceImagePermissions": describe_workspace_image_permissions,
}
HANDLED_OPERATIONS = frozenset(_HANDLERS)


def answer(operation: str, body: bytes, *, account_id: str, region: str, settings: ImportSettings) -> dict[str, Any]:
    """The JSON result of one of ``HANDLED_OPERATIONS``; raises ``WorkSpacesError`` to refuse."""
    try:
        params = json.loads(body or b"{}")
    except ValueError as error:
        raise WorkSpacesError("SerializationException", f"The request body is not valid JSON: {error}") from error
    if not isinstance(params, dict):
        raise WorkSpacesError("SerializationException", "The request body must be a JSON object.")
    return _HANDLERS[operation](params, account_id=account_id, region=region, settings=settings)
