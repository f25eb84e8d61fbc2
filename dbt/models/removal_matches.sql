-- Every (kept row, removal entry) match: hashes of the URL and of the image bytes, exact URLs,
-- domains (and their subdomains), URL prefixes, and PDQ hashes within the Hamming threshold.
{% set url_kinds = {'url_md5': 'md5(r.url)', 'url_sha1': 'sha1(r.url)', 'url_sha256': 'sha256(r.url)',
                    'image_md5': 'r.md5', 'image_sha1': 'r.sha1', 'image_sha256': 'r.sha256', 'url': 'r.url'} %}
with rows as (select row_id, sample_id, url, url_host, sha256, md5, sha1, pdq, pdq_quality
              from {{ ref('stg_filtered_pairs') }}),
entries as (select * from {{ ref('stg_removal_entries') }}),
-- Domains match a host and its subdomains: expand each distinct host (far fewer than rows) into its
-- dot-suffixes once, join those with the domain entries, then join the matched hosts back to rows.
hosts as (select distinct url_host from rows where url_host <> ''),
suffixes as (
    select url_host,
        unnest(list_transform(range(1, len(string_split(url_host, '.')) + 1),
                              lambda i: array_to_string(string_split(url_host, '.')[i:], '.'))) as suffix
    from hosts
),
blocked_hosts as (
    select s.url_host, e.kind, e.source
    from suffixes s join entries e on e.kind = 'domain' and e.value = s.suffix
)
{% for kind, expr in url_kinds.items() %}
select r.row_id, r.sample_id, e.kind, e.source
from rows r join entries e on e.kind = '{{ kind }}' and e.value = {{ expr }}
union all
{% endfor %}
select r.row_id, r.sample_id, b.kind, b.source
from rows r join blocked_hosts b using (url_host)
union all
select r.row_id, r.sample_id, e.kind, e.source
from rows r join entries e on e.kind = 'url_prefix' and e.prefix_host = r.url_host and starts_with(r.url, e.value)
union all
select r.row_id, r.sample_id, e.kind, e.source
from rows r join entries e on e.kind = 'pdq'
    and r.pdq is not null and r.pdq_quality >= {{ var('pdq_min_quality', 50) }}
    and {{ pdq_distance('r.pdq', 'e.value') }} <= {{ var('pdq_max_distance', 31) }}
