-- The whole funnel in one row: pairs extracted, images downloaded, pairs kept by the shard filter,
-- pairs that reached dedup (after removal lists and placeholders), duplicates removed, published
-- (before any release variant's NSFW policy).
with kept as (select count(*) as n from {{ ref('stg_filtered_pairs') }}),
drops as (
    select
        count(*) filter (where reason in ('duplicate', 'duplicate_image')) as duplicates,
        count(*) as all_drops
    from {{ ref('release_drops') }}
)
select
    (select count(*) from {{ ref('stg_shard_drops') }}) + kept.n as pairs_extracted,
    (select count(*) from {{ source('laion', 'downloads') }} where status = 'ok') as images_ok,
    kept.n as pairs_over_threshold,
    kept.n - drops.all_drops + drops.duplicates as pairs_before_dedup,
    drops.duplicates as duplicates_removed,
    kept.n - drops.all_drops as pairs_deduplicated
from kept, drops
