-- Every removal entry (already normalized by the removal_list asset: lowercase hex, bare domains).
{{ config(materialized='view') }}
-- url / url_prefix / domain values are canonical (core.removal.canonical) and `host` is the entry's
-- canonical host; lists written before `host` existed fall back to the value's host.
select
    kind, value, source, listed_on,
    case when kind = 'url_prefix' then coalesce(host, {{ url_host('value') }}) end as prefix_host
from (
    select * from {{ source('laion', 'removal_entries') }}
    union all by name
    select null::varchar as host where false
)
