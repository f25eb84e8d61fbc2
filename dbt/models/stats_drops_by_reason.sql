-- The funnel: how many extracted pairs each reason removed, by stage.
select stage, reason, count(*) as pairs
from {{ ref('drop_log') }}
group by stage, reason
