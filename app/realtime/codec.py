"""JSON for Socket.IO packets (python-socketio takes any module-like dumps/loads): acks and
events carry the declared shapes of app/models.py, which msgspec encodes as they are."""

from __future__ import annotations

from typing import Any

import orjson

from app import contract


class JsonCodec:
    @staticmethod
    def dumps(obj: Any, **_: Any) -> str:
        return contract.encode(obj).decode()

    @staticmethod
    def loads(data: str | bytes, **_: Any) -> Any:
        return orjson.loads(data)
