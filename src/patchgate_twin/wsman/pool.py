"""The twin's runspace pools: psrpcore's server pool, decoding each distinct CreatePipeline message once.

Every VM of a run receives the same pipelines (the capture, the staging ops, the install), and decoding a
CreatePipeline message (its CLIXML: host info, commands, a script of tens of kilobytes) was most of the CPU the
twin spent per WSMan request. The decoded object is only read afterwards (psrpcore builds the pipeline's metadata
from it), so one decoded copy per distinct message serves every pool. Messages carrying a SecureString depend on
their pool's session key and are decoded as psrpcore always does.
"""

from __future__ import annotations

import functools
from typing import Any
from xml.etree import ElementTree

from psrpcore import ServerRunspacePool
from psrpcore._events import PSRPEvent  # the event factory psrpcore's own _process_message uses
from psrpcore.types import PSRPMessageType, deserialize

_SECURE_STRING = b"<SS"


@functools.lru_cache(maxsize=64)
def _decoded_create_pipeline(data: bytes) -> Any:
    return deserialize(ElementTree.fromstring(data), cipher=None)  # type: ignore[arg-type]


class TwinRunspacePool(ServerRunspacePool):
    """ServerRunspacePool whose CreatePipeline messages share one decoded object per distinct message."""

    def _process_message(self, message: Any) -> PSRPEvent:
        data = bytes(message.data)
        if message.message_type != PSRPMessageType.CreatePipeline or _SECURE_STRING in data:
            return super()._process_message(message)
        event = PSRPEvent.create(message.message_type, _decoded_create_pipeline(data), message.runspace_pool_id,
                                 message.pipeline_id)
        self._process_CreatePipeline(event)
        return event
