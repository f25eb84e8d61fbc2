-- Row for row: every kept pair of every shard is published or in the drop log, exactly once.
select row_id, count(*) as n
from (
    select row_id from {{ ref('published_pairs') }}
    union all
    select crawl || '/' || shard || '/' || key from {{ ref('drop_log') }} where stage = 'release'
    union all
    select row_id from {{ ref('stg_filtered_pairs') }}
)
group by row_id
having count(*) <> 2
