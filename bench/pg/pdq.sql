-- bench/pg/pdq.sql: the PDQ (patient demographics query) of a home-grown MPI on pg_trgm and
-- fuzzystrmatch: the ten best records for a partial demographic query. Parameters, each NULL
-- when the case does not query it: $1 given name, $2 family name (text), $3 birth date (date),
-- $4 postcode (text).
--
-- Candidates (what the indexes can find):
--   a family name that is trigram-similar (pg_trgm %, similarity >= 0.3, the default
--   pg_trgm.similarity_threshold) or sounds the same (double metaphone), confirmed by the same
--   birth date, a trigram-similar given name or the same postcode;
--   or, for a family name that defeats both (a typo in a short name, a married name) and for
--   queries without one, the same birth date with a similar or same-sounding given name.
-- Ranking: trigram similarity of each queried name (0..1 each) + 1 for the same birth date
-- + 0.5 for the same postcode; ties by rec_id so the order is reproducible.
-- Records, not persons, are returned: a home-grown MPI without linking shows a clinic the
-- records, so several of the ten may be one person's duplicates.
SELECT person_id, rec_id,
       coalesce(similarity(surname, $2), 0) + coalesce(similarity(given_name, $1), 0)
       + CASE WHEN dob = $3 THEN 1.0 ELSE 0.0 END
       + CASE WHEN postcode = $4 THEN 0.5 ELSE 0.0 END AS score
FROM person_record
WHERE ((surname % $2 OR dmetaphone(surname) = dmetaphone($2))
       AND (dob = $3 OR given_name % $1 OR postcode = $4))
   OR (dob = $3 AND (given_name % $1 OR dmetaphone(given_name) = dmetaphone($1)))
ORDER BY score DESC, rec_id
LIMIT 10
