"""One dynamic partition per shard of a crawl: '<crawl>/<shard>', e.g. 'CC-MAIN-2024-22/00042'."""

import dagster as dg

shard_partitions = dg.DynamicPartitionsDefinition(name="shards")
