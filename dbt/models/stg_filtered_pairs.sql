-- All shards' kept pairs, with the keys that identify a pair across the whole dataset. A table, not a
-- view: every later model reads it several times, and hashing every URL once is enough.
select
    *,
    md5(url || chr(0) || text) as pair_hash,
    {{ sample_id('url', 'text') }} as sample_id,
    crawl || '/' || shard || '/' || key as row_id,
    {{ url_host('url') }} as url_host,
    {{ crawl_warc_path('warc_path', 'crawl') }} as crawl_warc_path
from {{ source('laion', 'filtered_pairs') }}
