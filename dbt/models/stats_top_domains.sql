-- The 100 image hosts with the most published pairs.
select url_host as domain, count(*) as pairs
from {{ ref('published_pairs') }}
group by 1
order by pairs desc, domain
limit 100
