-- What cross-shard dedup removed, per crawl: the release card and run metadata report it.
select
    s.crawl,
    count(*) as pairs_in,
    count(distinct s.pair_hash) as unique_pairs,
    count(*) - count(distinct s.pair_hash) as duplicates_removed_within_crawl,
    (select count(*) from {{ ref('published_pairs') }} p where p.crawl = s.crawl) as pairs_published
from {{ ref('stg_filtered_pairs') }} s
group by s.crawl
