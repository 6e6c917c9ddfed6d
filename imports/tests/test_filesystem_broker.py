"""The embedded broker: kombu's filesystem transport with messages visible only when whole."""

import os
from pathlib import Path
from typing import Any

import pytest
from kombu import Connection

from portal import filesystem_broker


def connection(folder: Path, transport: Any) -> Connection:
    options = {
        "data_folder_in": str(folder),
        "data_folder_out": str(folder),
        "control_folder": str(folder / "control"),
        "store_processed": False,
    }
    return Connection("filesystem://", transport=transport, transport_options=options)


def test_the_portal_runs_celery_on_it_whenever_the_broker_is_the_filesystem(settings: Any) -> None:
    from portal.celery import app

    if not settings.CELERY_BROKER_URL.startswith("filesystem://"):
        pytest.skip("this run uses a real broker (CELERY_BROKER_URL)")
    with app.connection_for_write() as conn:
        assert conn.transport_cls == "portal.filesystem_broker:Transport"
        assert isinstance(conn.transport, filesystem_broker.Transport)


def test_a_message_is_written_under_a_name_consumers_skip_then_renamed_into_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen_while_writing: list[list[str]] = []
    real_replace = os.replace

    def replace_noting_the_folder(src: str, dst: str) -> None:
        seen_while_writing.append(sorted(os.listdir(tmp_path)))
        real_replace(src, dst)

    monkeypatch.setattr(filesystem_broker.os, "replace", replace_noting_the_folder)
    with connection(tmp_path, filesystem_broker.Transport) as conn:
        queue = conn.SimpleQueue("work")
        queue.put({"n": 1})
        [while_writing] = seen_while_writing
        messages = [name for name in while_writing if ".work.msg" in name]
        assert [name.endswith(".work.msg" + filesystem_broker.PARTIAL_SUFFIX) for name in messages] == [True]
        assert queue.get(timeout=1).payload == {"n": 1}
        queue.close()
    assert not [name for name in os.listdir(tmp_path) if name.endswith(filesystem_broker.PARTIAL_SUFFIX)]
    assert not (Path.cwd() / "control").exists()
