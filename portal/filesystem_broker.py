"""kombu's filesystem transport, with messages that appear in the queue folder only when whole.

The embedded default (`make run`, the browser tests) runs Celery on kombu's filesystem
transport. Its `_put` creates the message file in the queue folder and writes it afterwards,
while a consumer's `_get` moves any file it lists without taking the writer's lock: a consumer
that lists the folder in between gets an empty message, fails to decode it and stops (seen under
load here). This transport writes each message under a name consumers do not pick up, then
renames it into place, which is atomic on one file system.
Selected in portal/settings.py (CELERY_BROKER_TRANSPORT) whenever the broker URL is filesystem://.
"""

import os
import uuid
from time import monotonic
from typing import Any

from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

# Consumers take only files named "<time>_<uuid>.<queue>.msg".
PARTIAL_SUFFIX = ".partial"


class Channel(filesystem.Channel):
    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = final + PARTIAL_SUFFIX
        try:
            with open(partial, "wb") as message:
                message.write(str_to_bytes(dumps(payload)))
            os.replace(partial, final)
        except OSError as exc:
            raise filesystem.ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel
