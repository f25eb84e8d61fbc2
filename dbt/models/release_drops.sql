-- The kept pairs the release stage drops, one reason each, first rule wins: removal:<source> (any
-- removal entry matches), placeholder_image, duplicate (same URL and TEXT: the copy with the highest
-- similarity stays, ties broken by provenance), duplicate_image (same image sha256: likewise).
-- Narrow and small on purpose: only dropped rows; published_pairs is every other kept pair. Copies
-- are ranked only inside the (URL, TEXT) and sha256 groups that occur more than once.
with pairs as not materialized (
    select crawl, shard, key, sample_id, url, text, sha256, similarity, warc_path, warc_offset
    from {{ ref('stg_filtered_pairs') }}
),
removed as (select crawl, shard, key, min(source) as source from {{ ref('removal_matches') }} group by all),
placeholder as (
    select p.crawl, p.shard, p.key
    from pairs p semi join {{ ref('placeholder_images') }} i using (sha256)
),
first_drops as (
    select crawl, shard, key, 'removal:' || source as reason from removed
    union all
    select crawl, shard, key, 'placeholder_image' as reason from placeholder anti join removed using (crawl, shard, key)
),
-- Candidates first by SAMPLE_ID (an integer: cheap to group), then ranked by the exact (URL, TEXT).
repeated_ids as (select sample_id from pairs group by sample_id having count(*) > 1),
pair_copies as (
    select p.crawl, p.shard, p.key, row_number() over (
        partition by p.url, p.text order by p.similarity desc, p.crawl, p.shard, p.warc_path, p.warc_offset, p.key) as n
    from pairs p semi join repeated_ids using (sample_id)
    anti join first_drops using (crawl, shard, key)
),
pair_drops as (select crawl, shard, key, 'duplicate' as reason from pair_copies where n > 1),
-- Likewise by a 64-bit hash of the image sha256, then ranked by the exact sha256.
repeated_images as (select hash(sha256) as h from pairs where sha256 is not null group by h having count(*) > 1),
image_copies as (
    select p.crawl, p.shard, p.key, row_number() over (
        partition by p.sha256 order by p.similarity desc, p.crawl, p.shard, p.warc_path, p.warc_offset, p.key) as n
    from pairs p semi join repeated_images r on hash(p.sha256) = r.h and p.sha256 is not null
    anti join first_drops using (crawl, shard, key)
    anti join pair_drops using (crawl, shard, key)
)
select crawl, shard, key, reason from first_drops
union all
select crawl, shard, key, reason from pair_drops
union all
select crawl, shard, key, 'duplicate_image' as reason from image_copies where n > 1
