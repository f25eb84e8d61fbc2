-- Placeholder images: one image (sha256 of the bytes) behind many different URLs ("image not found",
-- 1x1 pixels, lazy-load stand-ins). Counted over every downloaded image of every crawl; the cheap
-- count(*) pre-filter keeps the distinct-URL count to the few images seen often.
with often as (
    select sha256
    from {{ source('laion', 'downloads') }}
    where status = 'ok' and sha256 is not null
    group by sha256
    having count(*) >= {{ var('placeholder_min_urls', 5) }}
)
select d.sha256, count(distinct d.url) as distinct_urls
from {{ source('laion', 'downloads') }} d
join often using (sha256)
where d.status = 'ok'
group by d.sha256
having count(distinct d.url) >= {{ var('placeholder_min_urls', 5) }}
