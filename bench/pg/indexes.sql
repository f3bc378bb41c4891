-- bench/pg/indexes.sql: the indexes a home-grown MPI builds for its demographic queries,
-- created after the load (bench_mpi_pg times each statement), then statistics for the planner.
-- The first six serve pdq.sql (trigram GIN on both names, double metaphone of the family
-- name, birth date, postcode); the three composite double-metaphone indexes serve the
-- hand-tuned pdq_blocked.sql.
ALTER TABLE person_record ADD PRIMARY KEY (rec_id);
CREATE INDEX person_record_surname_trgm ON person_record USING gin (surname gin_trgm_ops);
CREATE INDEX person_record_given_trgm ON person_record USING gin (given_name gin_trgm_ops);
CREATE INDEX person_record_surname_dmeta ON person_record (dmetaphone(surname));
CREATE INDEX person_record_dob ON person_record (dob);
CREATE INDEX person_record_postcode ON person_record (postcode);
CREATE INDEX person_record_dmeta_names
    ON person_record (dmetaphone(surname), dmetaphone(given_name));
CREATE INDEX person_record_dmeta_surname_postcode ON person_record (dmetaphone(surname), postcode);
CREATE INDEX person_record_postcode_dmeta_given ON person_record (postcode, dmetaphone(given_name));
VACUUM (ANALYZE) person_record;
