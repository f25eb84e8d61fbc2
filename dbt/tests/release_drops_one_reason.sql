-- Each kept pair is dropped at release time for at most one reason.
select crawl, shard, key, count(*) as n
from {{ ref('release_drops') }}
group by crawl, shard, key
having count(*) > 1
