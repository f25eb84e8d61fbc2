-- Placeholder images: one image (sha256 of the bytes) behind many different URLs ("image not found",
-- 1x1 pixels, lazy-load stand-ins). Counted over every downloaded image of every crawl. Cheap
-- pre-filters first: images seen often, grouped by a 64-bit hash of the sha256 (an integer: far
-- cheaper to group than the 64-character hex); only those few are counted exactly, by distinct URL.
with often as (
    select hash(sha256) as h
    from {{ source('laion', 'downloads') }}
    where status = 'ok' and sha256 is not null
    group by h
    having count(*) >= {{ var('placeholder_min_urls') }}
)
select d.sha256, count(distinct d.url) as distinct_urls
from {{ source('laion', 'downloads') }} d
semi join often o on hash(d.sha256) = o.h
where d.status = 'ok' and d.sha256 is not null
group by d.sha256
having count(distinct d.url) >= {{ var('placeholder_min_urls') }}
