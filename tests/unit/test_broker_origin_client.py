"""Requests to origins that holds share: one origin request for every stream fetching the same next link."""

import asyncio

from broker.origin.client import Origins
from broker.origin.http11 import Endpoint, RawReply, StreamIf
from broker.services.model import ServiceConfig

SVC = ServiceConfig("s1", "a1", "http://origin.test", ("t",), "a-grip-key-of-32-bytes-or-more-!!", True)
OTHER = ServiceConfig("s2", "a1", "http://origin.test", ("t",), "another-grip-key-of-32-bytes-or-more", True)


class SlowOrigin:
    """An origin client that answers once told to, recording what it was asked."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, list[tuple[str, str]]]] = []
        self.answer = asyncio.Event()

    async def request(self, _endpoint: Endpoint, _method: str, target: str, headers: list[tuple[str, str]],
                      _body: bytes, _stream_if: StreamIf | None = None) -> RawReply:  # fmt: skip
        self.asked.append((target, headers))
        await self.answer.wait()
        return RawReply(200, "OK", (), f"answer to {target}".encode())

    async def close(self) -> None:
        return None


def test_identical_link_requests_in_flight_share_one_origin_request_and_a_caller_leaving_cancels_nothing():
    asyncio.run(_share())


async def _share() -> None:
    origins = Origins()
    slow = SlowOrigin()
    origins._client = slow  # type: ignore[assignment]
    last_1, last_2 = (("Grip-Last", "c; last-id=1"),), (("Grip-Last", "c; last-id=2"),)
    leaving = asyncio.ensure_future(origins.shared_get(SVC, "/next", last_1))
    staying = asyncio.ensure_future(origins.shared_get(SVC, "/next", last_1))
    others = [asyncio.ensure_future(origins.shared_get(s, "/next", h)) for s, h in ((SVC, last_2), (OTHER, last_1))]
    await asyncio.sleep(0.01)
    leaving.cancel()  # its client went away: the others still get the answer
    slow.answer.set()
    assert (await staying).body == b"answer to /next"
    await asyncio.gather(*others)
    assert len(slow.asked) == 3  # another Grip-Last, another service (its own Grip-Sig): asked apart
    later = await origins.shared_get(SVC, "/next", last_1)  # nothing in flight any more: asked again
    assert (later.body, len(slow.asked)) == (b"answer to /next", 4)
