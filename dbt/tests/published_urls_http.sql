select url from {{ ref('published_pairs') }}
where not regexp_matches(url, '^https?://[^/\s?#]+')
