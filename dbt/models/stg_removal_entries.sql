-- Every removal entry (already normalized by the removal_list asset: lowercase hex, bare domains).
{{ config(materialized='view') }}
select
    kind, value, source, listed_on,
    case when kind = 'url_prefix' then {{ url_host('value') }} end as prefix_host
from {{ source('laion', 'removal_entries') }}
