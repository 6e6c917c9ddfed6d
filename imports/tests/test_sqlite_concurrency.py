"""The embedded SQLite database copes with several processes writing at once (web server and
worker): WAL and immediate transactions queue writers instead of failing."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

WRITER = """
import django, sys
django.setup()
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from imports import workflow
from imports.models import AwsTarget
me = sys.argv[1]
user = get_user_model().objects.create_user(me)
user.groups.add(Group.objects.get(name="Requesters"))
boss = get_user_model().objects.create_user("boss-" + me)
boss.groups.add(Group.objects.get(name="Approvers"))
target = AwsTarget.objects.get()
for i in range(int(sys.argv[2])):
    fields = dict(target=target, windows_version="10", ec2_image_id="ami-0123456789abcdef0",
                  ingestion_process="BYOL_REGULAR_WSP", image_name=f"{me}-{i}", image_description="d",
                  tags=[], office="", justification="j")
    request = workflow.submit_request(requester=user, fields=fields)
    workflow.record_preflight(request_id=request.pk, version=1, checks=[])
    workflow.approve_request(request_id=request.pk, actor=boss, expected_version=1)
    workflow.claim_for_import(request_id=request.pk, lease_seconds=300)
"""


def run(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(  # noqa: S603 -- our own interpreter and script
        [sys.executable, *args], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def test_four_processes_writing_at_once_never_hit_database_is_locked(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env |= {"PORTAL_VAR_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "portal.settings"}
    migrate = run(["manage.py", "migrate", "--noinput", "-v0"], env)
    assert migrate.wait(timeout=120) == 0, migrate.stderr.read() if migrate.stderr else ""
    seed = run(
        [
            "-c",
            "import django; django.setup(); from imports.models import AwsTarget; "
            "AwsTarget.objects.create(name='T', account_id='123456789012', region='us-east-1')",
        ],
        env,
    )
    assert seed.wait(timeout=60) == 0

    writers = [run(["-c", WRITER, f"writer{n}", "15"], env) for n in range(4)]
    outcomes = [(w.wait(timeout=180), w.communicate()[1]) for w in writers]

    assert [code for code, _ in outcomes] == [0, 0, 0, 0], [err[-2000:] for _, err in outcomes]
    assert not any("database is locked" in err for _, err in outcomes)
    verify = run(["manage.py", "verify_audit"], env)
    out, err = verify.communicate(timeout=60)
    assert verify.returncode == 0, err
    assert "intact (request history: 240 events up to #240" in out
