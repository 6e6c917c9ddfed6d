"""EC2's DescribeImportImageTasks, which moto 5.2.5 lacks (it raises NotImplementedError, which
its server turns into an HTML 500), answered from the VM import tasks seeded in ``seed.py``.

The protocol is EC2's query protocol: form parameters in (``ImportTaskId.N``,
``Filters.N.Name``/``Filters.N.Value.M``, ``MaxResults``, ``NextToken``, ``DryRun``), XML out in
the 2016-11-15 namespace (``importImageTaskSet``/``item``, ``nextToken``, ``requestId``), and EC2's
error envelope (``Response/Errors/Error`` with ``RequestID``).
https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DescribeImportImageTasks.html

Errors:

* an id that is malformed or names no task: ``InvalidConversionTaskId.Malformed`` (400). EC2's
  error list documents it for a malformed conversion task id; that EC2 also sends it to
  DescribeImportImageTasks for a task that does not exist (any longer) is what callers report
  (the nodepool AWS driver treats it so), not documented; the sandbox sends it for both;
* a filter other than ``task-state`` or a MaxResults that is not a positive integer:
  ``InvalidParameterValue`` (400, a common client error);
* a NextToken the sandbox did not issue: ``InvalidPaginationToken`` (400, a common client error);
* ``DryRun=true``: ``DryRunOperation`` (412), as every EC2 action does.
"""

import base64
import binascii
import re
import uuid
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

from .seed import SEED_IMAGES, SEED_IMPORT_TASKS, SeedSource

EC2_NAMESPACE = "http://ec2.amazonaws.com/doc/2016-11-15/"
IMPORT_TASK_ID = re.compile(r"^import-ami-([a-zA-Z0-9]{8}|[a-zA-Z0-9]{17})$")
# The filter and values the operation's documentation names for Filters.
TASK_STATE_FILTER = "task-state"
TASK_STATES = ("active", "completed", "deleting", "deleted")
DRY_RUN_MESSAGE = "Request would have succeeded, but DryRun flag is set."

_BOOT_MODES = {image.ami_id: image.boot_mode for image in SEED_IMAGES}
_DESCRIPTIONS = {image.ami_id: image.description for image in SEED_IMAGES}

HANDLED_OPERATIONS = frozenset({"DescribeImportImageTasks"})


class Ec2Error(Exception):
    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status

    def xml(self, request_id: str) -> str:
        return (
            f"<Response><Errors><Error><Code>{escape(self.code)}</Code><Message>{escape(self.message)}</Message>"
            f"</Error></Errors><RequestID>{request_id}</RequestID></Response>"
        )


def _form(query_string: str, body: bytes) -> dict[str, list[str]]:
    params = parse_qs(query_string, keep_blank_values=True)
    for key, values in parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True).items():
        params.setdefault(key, []).extend(values)
    return params


def _numbered(params: dict[str, list[str]], prefix: str) -> list[str]:
    """The values of ``prefix.1``, ``prefix.2``, ... in the order of their numbers."""
    found = []
    for key, values in params.items():
        head, _, index = key.rpartition(".")
        if head == prefix and index.isdigit():
            found.append((int(index), values[0]))
    return [value for _, value in sorted(found)]


def _filters(params: dict[str, list[str]]) -> dict[str, set[str]]:
    wanted: dict[str, set[str]] = {}
    indexes = sorted(
        {int(key.split(".")[1]) for key in params if key.startswith("Filters.") and key.split(".")[1].isdigit()}
    )
    for index in indexes:
        name = params.get(f"Filters.{index}.Name", [""])[0]
        if name != TASK_STATE_FILTER:
            raise Ec2Error("InvalidParameterValue", f"The filter '{name}' is invalid: use {TASK_STATE_FILTER}.")
        wanted.setdefault(name, set()).update(_numbered(params, f"Filters.{index}.Value"))
    return wanted


def _page_token(start: int) -> str:
    return base64.urlsafe_b64encode(f"import-tasks:{start}".encode()).decode()


def _page_start(token: str) -> int:
    try:
        label, _, start = base64.urlsafe_b64decode(token.encode()).decode().partition(":")
    except (ValueError, binascii.Error) as error:
        raise Ec2Error("InvalidPaginationToken", f"The pagination token {token!r} is not valid.") from error
    if label != "import-tasks" or not start.isdigit():
        raise Ec2Error("InvalidPaginationToken", f"The pagination token {token!r} is not valid.")
    return int(start)


def _max_results(params: dict[str, list[str]]) -> int | None:
    if "MaxResults" not in params:
        return None
    value = params["MaxResults"][0]
    if not value.isdigit() or int(value) < 1:
        raise Ec2Error("InvalidParameterValue", f"MaxResults must be a positive integer, not {value!r}.")
    return int(value)


def _item(task_id: str, task: SeedSource) -> str:
    fields: list[tuple[str, str]] = [("importTaskId", task_id), ("architecture", "x86_64")]
    if task.ami_id is not None:
        fields.append(("description", _DESCRIPTIONS.get(task.ami_id, "")))
    if task.status == "completed" and task.ami_id is not None:
        fields.append(("imageId", task.ami_id))
        if _BOOT_MODES.get(task.ami_id):
            fields.append(("bootMode", str(_BOOT_MODES[task.ami_id])))
    fields += [("licenseType", "BYOL"), ("platform", "Windows")]
    if task.progress:
        fields.append(("progress", task.progress))
    fields.append(("status", task.status))
    if task.message:
        fields.append(("statusMessage", task.message))
    return "<item>" + "".join(f"<{tag}>{escape(value)}</{tag}>" for tag, value in fields if value) + "</item>"


def describe_import_image_tasks(query_string: str, body: bytes) -> str:
    """The XML answer to a DescribeImportImageTasks call; raises Ec2Error to refuse."""
    params = _form(query_string, body)
    if params.get("DryRun", ["false"])[0].lower() == "true":
        raise Ec2Error("DryRunOperation", DRY_RUN_MESSAGE, status=412)
    task_ids = _numbered(params, "ImportTaskId")
    for task_id in task_ids:
        if not IMPORT_TASK_ID.match(task_id) or task_id not in SEED_IMPORT_TASKS:
            raise Ec2Error(
                "InvalidConversionTaskId.Malformed", f"The import task ID '{task_id}' is malformed or does not exist."
            )
    wanted_states = _filters(params).get(TASK_STATE_FILTER)
    max_results = _max_results(params)
    start = _page_start(params["NextToken"][0]) if params.get("NextToken", [""])[0] else 0
    ids = list(dict.fromkeys(task_ids)) if task_ids else sorted(SEED_IMPORT_TASKS)
    tasks = [
        (task_id, SEED_IMPORT_TASKS[task_id])
        for task_id in ids
        if wanted_states is None or SEED_IMPORT_TASKS[task_id].status in wanted_states
    ]
    end = len(tasks) if max_results is None else start + max_results
    items = "".join(_item(task_id, task) for task_id, task in tasks[start:end])
    next_token = f"<nextToken>{_page_token(end)}</nextToken>" if end < len(tasks) else ""
    return (
        f'<DescribeImportImageTasksResponse xmlns="{EC2_NAMESPACE}">'
        f"<requestId>{uuid.uuid4()}</requestId>"
        f"<importImageTaskSet>{items}</importImageTaskSet>{next_token}"
        "</DescribeImportImageTasksResponse>"
    )
