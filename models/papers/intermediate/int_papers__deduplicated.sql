{#- The batch's valid records ranked per paper_id: the winner is the newest (highest version,
    then latest `updated`); a remaining tie goes to the smallest record hash, so the winner
    does not depend on the order the objects or entries arrived in. Only the keys travel
    through the intermediate models; `papers` picks the winners' fields from staging. -#}
with

records as (
    select * from {{ ref('stg_papers__records') }}
    where reject_reason is null
),

ranked as (
    select
        *,
        row_number() over (
            partition by paper_id
            order by paper_version desc, source_updated_at desc, record_hash asc
        ) as rank_in_batch
    from records
)

select
    paper_id,
    paper_version,
    source_updated_at,
    source_object,
    line_number,
    rank_in_batch,
    rank_in_batch = 1 as is_winner
from ranked
