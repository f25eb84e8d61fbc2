-- Row for row: every kept pair of every shard is published or in the drop log, exactly once.
select crawl, shard, key, count(*) as n
from (
    select crawl, shard, key from {{ ref('published_pairs') }}
    union all
    select crawl, shard, key from {{ ref('drop_log') }} where stage = 'release'
    union all
    select crawl, shard, key from {{ ref('stg_filtered_pairs') }}
)
group by crawl, shard, key
having count(*) <> 2
