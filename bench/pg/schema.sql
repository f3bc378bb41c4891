-- bench/pg/schema.sql: the table of a home-grown master patient index on PostgreSQL 15, as
-- bench_mpi_pg loads it. One row per received record (originals and duplicates alike), the
-- FEBRL columns with the birth date typed as a date. The extensions are what such an MPI
-- uses for fuzzy names: pg_trgm (trigram similarity, % operator, GIN) and fuzzystrmatch
-- (dmetaphone, soundex, levenshtein). Both ship in the Debian postgresql-15 package.
-- bench_mpi_pg runs each statement (separated by ';' at the end of a line) on its own.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE EXTENSION IF NOT EXISTS fuzzystrmatch;
CREATE TABLE person_record (
    rec_id        text NOT NULL,
    person_id     integer NOT NULL,  -- the generator's truth (rec-<i>-...): scoring only
    given_name    text,
    surname       text,
    street_number text,
    address_1     text,
    address_2     text,
    suburb        text,
    postcode      text,
    state         text,
    dob           date,
    soc_sec_id    text
);
