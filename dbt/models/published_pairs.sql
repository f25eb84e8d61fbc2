-- The rows every release variant starts from: one per (URL, TEXT) and per image across every crawl,
-- none matching a removal entry, no placeholder image. Variants then apply their NSFW policy.
select * exclude (drop_reason)
from {{ ref('release_candidates') }}
where drop_reason is null
