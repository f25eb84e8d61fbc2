-- Similarity is a cosine: a number in [-1, 1], and at or over the row's threshold.
select url, text, similarity, threshold
from {{ ref('published_pairs') }}
where similarity is null or isnan(similarity) or similarity < -1 or similarity > 1
   or similarity < threshold
