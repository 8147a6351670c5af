"""The response store as the API uses it: a response is kept after its answer went out,
and a read of it in this process waits for that write, so a client that chains its next
request at once (``previous_response_id``) never finds it missing. Another instance may be
asked before the write has reached Redis (it takes a millisecond or so): a miss there is
looked up once more, ``RECHECK`` seconds later."""

from __future__ import annotations

import asyncio
import logging

from redis.exceptions import RedisError

from .store import ResponseStore, ResponseTooLarge, StoredResponse

logger = logging.getLogger("cortex.responses")
RECHECK = 0.05


class KeptResponses:
    def __init__(self, store: ResponseStore) -> None:
        self.store = store
        self._writing: dict[tuple[str, str], asyncio.Task[None]] = {}

    def keep(self, owner: str, response_id: str, record: StoredResponse) -> None:
        """Write the record in the background; a failure is logged, not raised."""
        key = (owner, response_id)
        task = asyncio.create_task(self._put(owner, response_id, record))
        self._writing[key] = task
        task.add_done_callback(lambda _: self._writing.pop(key, None))

    async def get(self, owner: str, response_id: str) -> StoredResponse | None:
        writing = await self._written(owner, response_id)
        found = await self.store.get(owner, response_id)
        if found is None and writing is None:
            await asyncio.sleep(RECHECK)
            found = await self.store.get(owner, response_id)
        return found

    async def delete(self, owner: str, response_id: str) -> bool:
        await self._written(owner, response_id)
        return await self.store.delete(owner, response_id)

    async def close(self) -> None:
        if self._writing:
            await asyncio.wait(list(self._writing.values()), timeout=5)
        await self.store.close()

    async def _written(self, owner: str, response_id: str) -> asyncio.Task[None] | None:
        """This process's write of the record, once it is done (None: there was none)."""
        writing = self._writing.get((owner, response_id))
        if writing is not None:
            await asyncio.wait([writing])
        return writing

    async def _put(self, owner: str, response_id: str, record: StoredResponse) -> None:
        try:
            await self.store.put(owner, response_id, record)
        except ResponseTooLarge as exc:
            logger.warning("response %s not stored: %s", response_id, exc.message)
        except (RedisError, OSError) as exc:
            logger.warning("response %s not stored: the store failed: %s", response_id, exc)
