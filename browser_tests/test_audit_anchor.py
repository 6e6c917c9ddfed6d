"""The portal as `make run` starts it anchors its audit chains: beat writes the heads to the
sandbox's Object Lock bucket, and verify_audit checks the database against them."""

import time

from browser_tests.portal import Portal

ANCHOR_WAIT_SECONDS = 60


def test_beat_anchors_the_audit_heads_and_verification_checks_against_them(portal: Portal) -> None:
    deadline = time.monotonic() + ANCHOR_WAIT_SECONDS
    out = portal.manage("verify_audit")
    while "matches the newest anchor" not in out and time.monotonic() < deadline:
        time.sleep(1)
        out = portal.manage("verify_audit")

    assert "the audit history is intact" in out
    assert "matches the newest anchor (audit-anchors/" in out
