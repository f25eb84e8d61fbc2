{# SQL twins of laion_assets.core (ids.sample_id, removal.host_sql / pdq_distance_sql); tests pin them equal. #}
{% macro sample_id(url, text) -%}
    ((('0x' || substr(sha256({{ url }} || chr(0) || {{ text }}), 1, 16))::UBIGINT >> 1)::BIGINT)
{%- endmacro %}

{% macro url_host(url) -%}
    lower(regexp_extract({{ url }}, '^[A-Za-z][A-Za-z0-9+.-]*://(?:[^@/?#]*@)?([^/:?#]+)', 1))
{%- endmacro %}

{# SQL twin of core.removal.canonical.is_ip_host (IP_HOST_PATTERN) over canonical hosts. #}
{% macro is_ip_host(host) -%}
    regexp_full_match({{ host }}, '[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+|\[[0-9a-f:.]+\]')
{%- endmacro %}

{% macro pdq_distance(a, b) -%}
    {%- for i in range(4) -%}
    bit_count(xor(('0x' || substr({{ a }}, {{ 1 + 16 * i }}, 16))::UBIGINT, ('0x' || substr({{ b }}, {{ 1 + 16 * i }}, 16))::UBIGINT)){% if not loop.last %} + {% endif %}
    {%- endfor -%}
{%- endmacro %}

{# The crawl's own path of a WARC file, never the builder's local directory: URIs and relative paths
   (the manifest's crawl-relative form) stay as they are, a Common Crawl path keeps its
   `crawl-data/...` tail, an absolute local file becomes `<crawl>/<file name>`. #}
{% macro crawl_warc_path(path, crawl) -%}
    case
        when strpos({{ path }}, 'crawl-data/') > 0 then substr({{ path }}, strpos({{ path }}, 'crawl-data/'))
        when regexp_matches({{ path }}, '^[a-z][a-z0-9+.-]*://') and not starts_with({{ path }}, 'file://') then {{ path }}
        when starts_with({{ path }}, '/') or starts_with({{ path }}, 'file://') or regexp_matches({{ path }}, '^[A-Za-z]:[\\/]')
            then {{ crawl }} || '/' || regexp_extract({{ path }}, '([^/\\]+)$', 1)
        else {{ path }}
    end
{%- endmacro %}
