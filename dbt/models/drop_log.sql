-- Every extracted pair that is not in published_pairs, with one reason; URLs only as sha256 hashes.
-- Shard drops (not downloaded, opt-outs, below threshold, ...) plus release drops (removal,
-- placeholder, duplicates). Variant NSFW drops are added by the release (manifest `drops`).
select crawl, shard, key, sample_id, url_sha256, reason, stage
from {{ ref('stg_shard_drops') }}
union all
select crawl, shard, key, sample_id, sha256(url) as url_sha256, drop_reason as reason, 'release' as stage
from {{ ref('release_candidates') }}
where drop_reason is not null
