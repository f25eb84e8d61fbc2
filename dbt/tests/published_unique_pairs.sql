-- No (URL, TEXT) pair is published twice: cross-crawl dedup held.
select url, text, count(*) as n
from {{ ref('published_pairs') }}
group by url, text
having count(*) > 1
