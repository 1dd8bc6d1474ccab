"""(pure) The delivery log's values: a delivery as ingress hands it over, its statuses, its stored body."""

from __future__ import annotations

from dataclasses import dataclass

import lz4.block

# A delivery's status: recorded and waiting, then one of the three outcomes a worker stores.
RECEIVED, PROCESSED, IGNORED, FAILED = "received", "processed", "ignored", "failed"


@dataclass(frozen=True, slots=True)
class NewDelivery:
    id: str
    event: str
    action: str | None
    installation_id: int | None
    body: bytes  # exactly as GitHub sent it


@dataclass(frozen=True, slots=True)
class Recorded:
    """What happened to one delivery: `new` is False for a redelivery we already hold."""

    new: bool


# Bodies are stored LZ4-compressed, their length in front (LZ4's block format): a fifth of the bytes to
# write and keep, for a few microseconds (bench/README.md).
def pack(body: bytes) -> bytes:
    """The stored form of a body exactly as GitHub sent it."""
    return lz4.block.compress(body, store_size=True)


def unpack(stored: bytes) -> bytes:
    """The body exactly as GitHub sent it."""
    return lz4.block.decompress(stored)
