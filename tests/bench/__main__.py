"""``make bench``: run every benchmark and print its figures."""

import asyncio

from tests.bench.outbox import main

if __name__ == "__main__":
    asyncio.run(main())
