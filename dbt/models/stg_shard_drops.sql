-- Every shard's drop log; URLs leave as hashes (sha256 of the URL) from here on.
{{ config(materialized='view') }}
select
    crawl, shard, key,
    {{ sample_id('url', 'text') }} as sample_id,
    sha256(url) as url_sha256,
    reason,
    'shard' as stage
from {{ source('laion', 'shard_drops') }}
