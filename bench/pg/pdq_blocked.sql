-- bench/pg/pdq_blocked.sql: a hand-tuned PDQ for the same indexes plus the composite
-- double-metaphone ones of indexes.sql, the best we found for PostgreSQL (the fair baseline
-- for latency). Same parameters, ranking and LIMIT as pdq.sql.
--
-- Candidates come only from selective b-tree blocks, never from a trigram scan (a GIN
-- trigram scan of a common name reads tens of thousands of postings, 10-30 ms at 1M persons):
--   the same birth date (~45 records at 1M persons: catches any name typo);
--   family and given names that sound the same (double metaphone of both: a wrong date);
--   same-sounding family name and the same postcode (a wrong date, no given name);
--   the same postcode and a same-sounding given name (a wrong date, no family name).
-- A candidate must then show name evidence: a trigram-similar or same-sounding family or
-- given name (the trigram operator only filters here).
SELECT person_id, rec_id,
       coalesce(similarity(surname, $2), 0) + coalesce(similarity(given_name, $1), 0)
       + CASE WHEN dob = $3 THEN 1.0 ELSE 0.0 END
       + CASE WHEN postcode = $4 THEN 0.5 ELSE 0.0 END AS score
FROM person_record
WHERE (dob = $3
       OR (dmetaphone(surname) = dmetaphone($2) AND dmetaphone(given_name) = dmetaphone($1))
       OR (dmetaphone(surname) = dmetaphone($2) AND postcode = $4)
       OR (postcode = $4 AND dmetaphone(given_name) = dmetaphone($1)))
  AND (surname % $2 OR given_name % $1
       OR dmetaphone(surname) = dmetaphone($2) OR dmetaphone(given_name) = dmetaphone($1))
ORDER BY score DESC, rec_id
LIMIT 10
