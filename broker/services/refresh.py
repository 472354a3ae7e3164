"""Keep a broker's services fresh: reload them periodically, keeping the last good ones on failure."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from broker.services.model import BrokerConfig

logger = logging.getLogger(__name__)


async def keep_fresh(
    load: Callable[[], BrokerConfig], apply: Callable[[BrokerConfig], None], interval_s: float
) -> None:
    """Every ``interval_s``, ``load`` the services (in a thread) and ``apply`` them; runs until cancelled.

    A failed load is logged and the services applied last stay in force, so a database that is
    briefly away never takes the services down with it.
    """
    failing = False
    while True:
        await asyncio.sleep(interval_s)
        try:
            config = await asyncio.to_thread(load)
        except Exception:
            # Logged with its traceback once per outage, not every interval.
            if not failing:
                logger.exception("reloading the broker's services failed; keeping the last good ones")
            failing = True
            continue
        if failing:
            logger.warning("reloading the broker's services works again")
        failing = False
        apply(config)
