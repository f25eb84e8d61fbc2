-- Published similarity in buckets of 0.02 (bucket_start inclusive).
select round(floor(similarity / 0.02) * 0.02, 2) as bucket_start, count(*) as pairs
from {{ ref('published_pairs') }}
group by 1
