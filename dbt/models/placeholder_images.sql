-- Placeholder images: one image (sha256 of the bytes) behind many different URLs ("image not found",
-- 1x1 pixels, lazy-load stand-ins). Counted over every downloaded image of every crawl.
select
    sha256,
    count(distinct url) as distinct_urls,
    count(distinct {{ url_host('url') }}) as distinct_hosts
from {{ source('laion', 'downloads') }}
where status = 'ok' and sha256 is not null
group by sha256
having count(distinct url) >= {{ var('placeholder_min_urls', 5) }}
