-- HTTP intake gateway: API keys of the channel integrations.
--
-- Only the SHA-256 of a key is stored; the key itself is shown once, when it is created. A key
-- restricted to a channel may only submit (and look up) that channel's requests. Revoking keeps
-- the row, so the list shows who had access and until when.

CREATE TABLE api_keys (
    id            text PRIMARY KEY,
    name          text NOT NULL,
    -- NULL: every channel.
    channel       text,
    -- Lower-case hex SHA-256 of the whole key string.
    key_hash      text NOT NULL UNIQUE,
    -- Per-key token bucket; NULL takes the gateway's settings.
    rate_per_sec  integer CHECK (rate_per_sec > 0),
    burst         integer CHECK (burst > 0),
    created_at    timestamptz NOT NULL DEFAULT now(),
    revoked_at    timestamptz
);
