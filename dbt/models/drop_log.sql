-- Every extracted pair that is not in published_pairs, with one reason; URLs only as sha256 hashes.
-- Shard drops (not downloaded, opt-outs, below threshold, ...) plus release drops (removal,
-- placeholder, duplicates). Variant NSFW drops are added by the release (manifest `funnel`).
select crawl, shard, key, sample_id, url_sha256, reason, stage
from {{ ref('stg_shard_drops') }}
union all
select s.crawl, s.shard, s.key, s.sample_id, sha256(s.url) as url_sha256, d.reason, 'release' as stage
from {{ ref('stg_filtered_pairs') }} s
join {{ ref('release_drops') }} d using (crawl, shard, key)
