"""``make bench``: run every benchmark and print its figures."""

import asyncio
import os
from pathlib import Path

from tests.bench import (
    campaign_send,
    customer_import,
    customer_search,
    gateway,
    interaction_ingest,
    memory,
    outbound,
    outbox,
    segment_recompute,
    table,
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
    asyncio.run(campaign_send.main())
    print()
    segment_recompute.main()
    print()
    memory.main()
    print()
    print("summary")
    print(table.render())
    results = os.environ.get("BENCH_RESULTS_DIR") or (
        Path(__file__).resolve().parents[2] / ".rapport" / "bench" / "results"
    )
    written = table.write(Path(results))
    print(f"(also written to {written})")
