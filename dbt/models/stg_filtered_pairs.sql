-- All shards' kept pairs, with the keys that identify a pair across the whole dataset. A view, not a
-- table: later models read only the columns they need straight from the shard parquet (columnar),
-- and nothing wide is copied into the warehouse (at 10M rows that copy cost more than the release).
-- SAMPLE_ID, the URL's host and its canonical URL and host are written by the filter stage (once per pair). Shards written before
-- it had those columns get them here, but only when some shard lacks them: computing the fallback
-- means reading every caption in every model that uses sample_id, so a probe (answered from the
-- parquet statistics, milliseconds) decides when the model runs.
{{ config(materialized='view') }}
{% set shards %}
    select * from {{ source('laion', 'filtered_pairs') }}
    union all by name
    select null::bigint as sample_id, null::varchar as url_host,
           null::varchar as url_canonical, null::varchar as host_canonical where false
{% endset %}
{% set complete = false %}
{% if execute %}
    {% set probe = "select count(*) from (select sample_id, url_host from (" ~ shards ~ ") "
                   ~ "where sample_id is null or url_host is null limit 1)" %}
    {% set complete = run_query(probe).columns[0].values()[0] == 0 %}
{% endif %}
select
    * exclude (sample_id, url_host, url_canonical, host_canonical),
{% if complete %}
    sample_id,
    url_host,
{% else %}
    coalesce(sample_id, {{ sample_id('url', 'text') }}) as sample_id,
    coalesce(url_host, {{ url_host('url') }}) as url_host,
{% endif %}
    -- Removal matching compares these (core.removal.canonical, computed by the filter stage). A shard
    -- written before them (or a URL without a canonical form) falls back to the URL as stored and
    -- its lowercased host without trailing dots: re-filter such shards for every spelling to match.
    coalesce(url_canonical, url) as url_canonical,
    coalesce(host_canonical, rtrim({{ url_host('url') }}, '.')) as host_canonical,
    {{ crawl_warc_path('warc_path', 'crawl') }} as crawl_warc_path
from ({{ shards }})
