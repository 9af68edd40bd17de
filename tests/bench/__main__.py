"""``make bench``: run every benchmark and print its figures."""

import asyncio

from tests.bench import (
    customer_import,
    customer_search,
    gateway,
    interaction_ingest,
    outbound,
    outbox,
    segment_recompute,
    webhooks,
)

if __name__ == "__main__":
    asyncio.run(outbox.main())
    print()
    gateway.main()
    print()
    webhooks.main()
    print()
    customer_search.main()
    print()
    asyncio.run(customer_import.main())
    print()
    interaction_ingest.main()
    print()
    asyncio.run(outbound.main())
    print()
    segment_recompute.main()
