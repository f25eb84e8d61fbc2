-- The rows every release variant starts from: one per (URL, TEXT) and per image across every crawl,
-- none matching a removal entry, no placeholder image. Variants then apply their NSFW policy.
-- A view: the release reads it once; persisting the wide rows would double the cost.
{{ config(materialized='view') }}
select s.*
from {{ ref('stg_filtered_pairs') }} s
anti join {{ ref('release_drops') }} d using (crawl, shard, key)
