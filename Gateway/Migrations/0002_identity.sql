CREATE TABLE users (
    id                uuid        PRIMARY KEY,
    tenant_id         text        NOT NULL REFERENCES tenants (id),
    email             text        NOT NULL,
    normalized_email  text        NOT NULL,
    name              text        NOT NULL,
    password_hash     text        NOT NULL,
    role              text        NOT NULL CHECK (role IN ('customer', 'admin')),
    version           bigint      NOT NULL DEFAULT 1,
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL,
    UNIQUE (tenant_id, normalized_email)
);

-- Refresh tokens are stored hashed. Every rotation stays in its family, so reuse of an old token can revoke all of it.
CREATE TABLE refresh_tokens (
    id            uuid        PRIMARY KEY,
    family_id     uuid        NOT NULL,
    user_id       uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash    bytea       NOT NULL UNIQUE,
    created_at    timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL,
    used_at       timestamptz,
    revoked_at    timestamptz
);
CREATE INDEX ix_refresh_tokens_family ON refresh_tokens (family_id);

-- Token signing keys, shared by every Gateway replica. A new key is published before it signs anything.
CREATE TABLE signing_keys (
    kid           text        PRIMARY KEY,
    private_key   text        NOT NULL,
    created_at    timestamptz NOT NULL,
    activates_at  timestamptz NOT NULL,
    retires_at    timestamptz
);
