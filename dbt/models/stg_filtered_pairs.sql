-- All shards' kept pairs, with the key that identifies a pair across the whole dataset.
{{ config(materialized='view') }}
select
    *,
    md5(url || chr(0) || text) as pair_hash
from {{ source('laion', 'filtered_pairs') }}
