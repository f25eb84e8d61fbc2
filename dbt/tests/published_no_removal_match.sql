-- Zero published rows match any removal entry. Written independently of removal_matches (no shared
-- SQL), so a bug in the anti-join cannot hide itself.
select p.crawl, p.shard, p.key, e.kind, e.source
from {{ ref('published_pairs') }} p
join {{ ref('stg_removal_entries') }} e on
    (e.kind = 'url' and e.value = p.url_canonical)
    or (e.kind = 'url_md5' and e.value = md5(p.url))
    or (e.kind = 'url_sha1' and e.value = sha1(p.url))
    or (e.kind = 'url_sha256' and e.value = sha256(p.url))
    or (e.kind = 'image_sha256' and e.value = p.sha256)
    or (e.kind = 'image_md5' and e.value = p.md5)
    or (e.kind = 'image_sha1' and e.value = p.sha1)
    or (e.kind = 'domain' and (p.host_canonical = e.value
        or (ends_with(p.host_canonical, '.' || e.value) and not {{ is_ip_host('p.host_canonical') }})))
    or (e.kind = 'url_prefix' and starts_with(p.url_canonical, e.value))
    or (e.kind = 'pdq' and p.pdq is not null and p.pdq_quality >= {{ var('pdq_min_quality') }}
        and {{ pdq_distance('p.pdq', 'e.value') }} <= {{ var('pdq_max_distance') }})
