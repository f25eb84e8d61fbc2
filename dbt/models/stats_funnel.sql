-- The whole funnel in one row: pairs extracted, images downloaded, pairs kept by the shard filter,
-- pairs that reached dedup (after removal lists and placeholders), duplicates removed, published
-- (before any release variant's NSFW policy).
select
    (select count(*) from {{ ref('stg_shard_drops') }}) + (select count(*) from {{ ref('release_candidates') }}) as pairs_extracted,
    (select count(*) from {{ source('laion', 'downloads') }} where status = 'ok') as images_ok,
    (select count(*) from {{ ref('release_candidates') }}) as pairs_over_threshold,
    (select count(*) from {{ ref('release_candidates') }}
      where drop_reason is null or drop_reason in ('duplicate', 'duplicate_image')) as pairs_before_dedup,
    (select count(*) from {{ ref('release_candidates') }}
      where drop_reason in ('duplicate', 'duplicate_image')) as duplicates_removed,
    (select count(*) from {{ ref('release_candidates') }} where drop_reason is null) as pairs_deduplicated
