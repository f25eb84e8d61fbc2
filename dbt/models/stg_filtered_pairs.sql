-- All shards' kept pairs, with the keys that identify a pair across the whole dataset. A view, not a
-- table: later models read only the columns they need straight from the shard parquet (columnar),
-- and nothing wide is copied into the warehouse (at 10M rows that copy cost more than the release).
-- SAMPLE_ID and the URL's host are written by the filter stage (once per pair); shards written before
-- it had those columns get them here.
{{ config(materialized='view') }}
select
    * exclude (sample_id, url_host),
    coalesce(sample_id, {{ sample_id('url', 'text') }}) as sample_id,
    coalesce(url_host, {{ url_host('url') }}) as url_host,
    {{ crawl_warc_path('warc_path', 'crawl') }} as crawl_warc_path
from (
    select * from {{ source('laion', 'filtered_pairs') }}
    union all by name
    select null::bigint as sample_id, null::varchar as url_host where false
)
