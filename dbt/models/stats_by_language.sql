select coalesce(language, 'unknown') as language, count(*) as pairs, avg(similarity) as mean_similarity
from {{ ref('published_pairs') }}
group by 1
