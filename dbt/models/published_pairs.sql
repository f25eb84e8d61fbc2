-- One row per (URL, TEXT) across every crawl and shard: the copy with the highest similarity wins,
-- ties broken by provenance so the choice is deterministic. Removal lists join here (see docs).
select * exclude (rn)
from (
    select
        *,
        row_number() over (
            partition by pair_hash
            order by similarity desc, crawl, shard, warc_path, warc_offset, key
        ) as rn
    from {{ ref('stg_filtered_pairs') }}
)
where rn = 1
