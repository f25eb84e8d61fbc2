-- Every (kept row, removal entry) match: hashes of the URL and of the image bytes, exact URLs,
-- domains (and their subdomains), URL prefixes, and PDQ hashes within the Hamming threshold.
-- Only the kinds the removal list holds are joined (a URL is hashed only when some entry is a hash
-- of that kind): the list of kinds is read from the entries when the model runs.
{% set url_kinds = {'url_md5': 'md5(r.url)', 'url_sha1': 'sha1(r.url)', 'url_sha256': 'sha256(r.url)',
                    'image_md5': 'r.md5', 'image_sha1': 'r.sha1', 'image_sha256': 'r.sha256'} %}
{% set kinds = [] %}
{% if execute %}
    {% set kinds = run_query("select distinct kind from " ~ ref('stg_removal_entries')).columns[0].values() | list %}
{% endif %}
with rows as not materialized (select crawl, shard, key, sample_id, url, sha256, md5, sha1, pdq, pdq_quality
              from {{ ref('stg_filtered_pairs') }}),
entries as (select * from {{ ref('stg_removal_entries') }})
{%- if 'domain' in kinds or 'url_prefix' in kinds or 'url' in kinds %},
-- URLs, domains and prefixes compare canonical forms (core.removal.canonical), never raw spellings.
hosted as not materialized (select crawl, shard, key, sample_id, url_canonical as url, host_canonical as url_host
                            from {{ ref('stg_filtered_pairs') }})
{%- endif %}
{%- if 'domain' in kinds %},
-- Domains match a host and its subdomains: expand each distinct host (far fewer than rows) into its
-- dot-suffixes once, join those with the domain entries, then join the matched hosts back to rows.
-- An IP address is its own only "suffix": `0.1` never takes out 10.0.0.1.
hosts as (select distinct url_host from hosted where url_host <> ''),
suffixes as (
    select url_host,
        unnest(case when {{ is_ip_host('url_host') }} then [url_host]
                    else list_transform(range(1, len(string_split(url_host, '.')) + 1),
                                        lambda i: array_to_string(string_split(url_host, '.')[i:], '.')) end) as suffix
    from hosts
),
blocked_hosts as (
    select s.url_host, e.kind, e.source
    from suffixes s join entries e on e.kind = 'domain' and e.value = s.suffix
)
{%- endif %}
{% for kind, expr in url_kinds.items() if kind in kinds %}
select r.crawl, r.shard, r.key, r.sample_id, e.kind, e.source
from rows r join entries e on e.kind = '{{ kind }}' and e.value = {{ expr }}
union all
{% endfor %}
{% if 'url' in kinds %}
select r.crawl, r.shard, r.key, r.sample_id, e.kind, e.source
from hosted r join entries e on e.kind = 'url' and e.value = r.url
union all
{% endif %}
{% if 'domain' in kinds %}
select r.crawl, r.shard, r.key, r.sample_id, b.kind, b.source
from hosted r join blocked_hosts b using (url_host)
union all
{% endif %}
{% if 'url_prefix' in kinds %}
select r.crawl, r.shard, r.key, r.sample_id, e.kind, e.source
from hosted r join entries e on e.kind = 'url_prefix' and e.prefix_host = r.url_host and starts_with(r.url, e.value)
union all
{% endif %}
{% if 'pdq' in kinds %}
{% set d = var('pdq_max_distance') %}
{% if d // 16 > 1 %}
select r.crawl, r.shard, r.key, r.sample_id, e.kind, e.source
from rows r join entries e on e.kind = 'pdq'
    and r.pdq is not null and r.pdq_quality >= {{ var('pdq_min_quality') }}
    and {{ pdq_distance('r.pdq', 'e.value') }} <= {{ d }}
{% else %}
-- PDQ within d bits, without comparing every row with every entry (core.removal.pdq_matches_sql):
-- two hashes within d <= 31 bits agree to within d // 16 bits on one of their 16 16-bit bands, so
-- each entry's bands (and, for d >= 16, their 16 one-bit variants) are equi-joined with the rows'
-- bands and only those candidates get the full distance.
select crawl, shard, key, sample_id, kind, source from (
    select distinct r.crawl, r.shard, r.key, r.sample_id, r.pdq, e.value, e.kind, e.source
    from (select r.*, band, ('0x' || substr(r.pdq, 1 + 4 * band, 4))::integer as v
          from rows r, range(16) b(band)
          where r.pdq is not null and r.pdq_quality >= {{ var('pdq_min_quality') }}) r
    join (select e.*, band, xor(('0x' || substr(e.value, 1 + 4 * band, 4))::integer, f) as v
          from entries e, range(16) b(band),
               (select 0 as f{% if d >= 16 %} union all select (1 << b) as f from range(16) t(b){% endif %}) x
          where e.kind = 'pdq') e using (band, v)
) m
where {{ pdq_distance('m.pdq', 'm.value') }} <= {{ d }}
{% endif %}
union all
{% endif %}
-- (typed and empty: the shape of the table when the list is empty)
select crawl, shard, key, sample_id, null::varchar as kind, null::varchar as source from rows where false
