-- What the release stage did per crawl: kept pairs in, duplicates and other release drops, published.
select
    c.crawl,
    count(*) as pairs_in,
    count(distinct c.pair_hash) as unique_pairs,
    count(*) filter (where c.drop_reason = 'duplicate') as duplicates_removed,
    count(*) filter (where c.drop_reason = 'duplicate_image') as duplicate_images_removed,
    count(*) filter (where c.drop_reason = 'placeholder_image') as placeholder_images_removed,
    count(*) filter (where starts_with(c.drop_reason, 'removal:')) as removal_requests_applied,
    count(*) filter (where c.drop_reason is null) as pairs_published
from {{ ref('release_candidates') }} c
group by c.crawl
