-- Every shard's drop log; URLs leave as hashes (sha256 of the URL) from here on. SAMPLE_ID is written
-- by the filter stage; drop logs written before it had the column get it here.
{{ config(materialized='view') }}
select
    crawl, shard, key,
    coalesce(sample_id, {{ sample_id('url', 'text') }}) as sample_id,
    sha256(url) as url_sha256,
    reason,
    'shard' as stage
from (
    select * from {{ source('laion', 'shard_drops') }}
    union all by name
    select null::bigint as sample_id where false
)
