-- The search index: one row per product, fed only by the products change feed (never written by clients).
--
-- pg_trgm gives typo tolerance (trigram similarity on the name). It ships with PostgreSQL's contrib
-- package and is on Amazon RDS's list of supported extensions; RDS lets the database owner (the
-- rds_superuser-granted master user) run CREATE EXTENSION for it, and the test server is a superuser.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE search_documents (
    product_id  uuid PRIMARY KEY,
    sku         text NOT NULL,
    name        text NOT NULL,
    description text NOT NULL DEFAULT '',
    category    text NOT NULL,
    price_cents bigint NOT NULL CHECK (price_cents >= 0),
    currency    text NOT NULL,
    updated_at  timestamptz NOT NULL,
    -- The feed position this row was last written at (debugging, and a guard against going backwards).
    source_seq  bigint NOT NULL CHECK (source_seq > 0),
    indexed_at  timestamptz NOT NULL DEFAULT now(),
    -- Weighted document: a hit in the name (A) outranks one in the category (B), which outranks one in
    -- the description (C). 'english' stems (laptops -> laptop); to_tsvector(regconfig, text) is
    -- immutable, so it can be a stored generated column.
    document    tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector('english', name), 'A')
        || setweight(to_tsvector('english', category), 'B')
        || setweight(to_tsvector('english', description), 'C')
    ) STORED
);

CREATE INDEX search_documents_document_idx ON search_documents USING gin (document);
-- word_similarity operator (<%) on the name, for typo-tolerant matches.
CREATE INDEX search_documents_name_trgm_idx ON search_documents USING gin (name gin_trgm_ops);

-- Where the indexer is in the products change feed. One row; advanced in the same transaction as the
-- batch it covers, so a crash can neither lose nor replay an update.
CREATE TABLE indexer_cursor (
    id         boolean PRIMARY KEY DEFAULT true CHECK (id),
    last_seq   bigint NOT NULL DEFAULT 0 CHECK (last_seq >= 0),
    updated_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO indexer_cursor (id, last_seq) VALUES (true, 0);
