-- Every kept pair of every shard, judged once more across crawls, in this order (first rule wins):
-- removal:<source> (any removal entry matches), placeholder_image, duplicate (same URL and TEXT:
-- the copy with the highest similarity stays, ties broken by provenance), duplicate_image (same
-- image sha256: likewise). drop_reason is null for the rows every release variant starts from.
-- Narrow on purpose (row ids and the reason): published_pairs joins it back to the wide rows.
with base as (
    select row_id, crawl, shard, key, pair_hash, sha256, similarity, warc_path, warc_offset
    from {{ ref('stg_filtered_pairs') }}
),
removed as (select row_id, min(source) as source from {{ ref('removal_matches') }} group by row_id),
judged as (
    select b.*,
        case when r.row_id is not null then 'removal:' || r.source
             when p.sha256 is not null then 'placeholder_image' end as first_reason
    from base b
    left join removed r using (row_id)
    left join {{ ref('placeholder_images') }} p on p.sha256 = b.sha256
),
pair_rank as (
    select row_id, row_number() over (
        partition by pair_hash order by similarity desc, crawl, shard, warc_path, warc_offset, key) as n
    from judged where first_reason is null
),
image_rank as (
    select j.row_id, row_number() over (
        partition by coalesce(j.sha256, j.row_id)
        order by j.similarity desc, j.crawl, j.shard, j.warc_path, j.warc_offset, j.key) as n
    from judged j join pair_rank p using (row_id) where p.n = 1
)
select
    j.row_id, j.crawl, j.pair_hash,
    coalesce(j.first_reason,
             case when p.n > 1 then 'duplicate' when i.n > 1 then 'duplicate_image' end) as drop_reason
from judged j
left join pair_rank p using (row_id)
left join image_rank i using (row_id)
