-- What the release stage did per crawl: kept pairs in, duplicates and other release drops, published.
with pairs_in as (select crawl, count(*) as pairs_in from {{ ref('stg_filtered_pairs') }} group by crawl),
drops as (
    select crawl,
        count(*) filter (where reason = 'duplicate') as duplicates_removed,
        count(*) filter (where reason = 'duplicate_image') as duplicate_images_removed,
        count(*) filter (where reason = 'placeholder_image') as placeholder_images_removed,
        count(*) filter (where starts_with(reason, 'removal:')) as removal_requests_applied,
        count(*) as dropped
    from {{ ref('release_drops') }}
    group by crawl
)
select
    p.crawl,
    p.pairs_in,
    coalesce(d.duplicates_removed, 0) as duplicates_removed,
    coalesce(d.duplicate_images_removed, 0) as duplicate_images_removed,
    coalesce(d.placeholder_images_removed, 0) as placeholder_images_removed,
    coalesce(d.removal_requests_applied, 0) as removal_requests_applied,
    p.pairs_in - coalesce(d.dropped, 0) as pairs_published
from pairs_in p
left join drops d using (crawl)
