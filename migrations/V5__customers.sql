-- Customers: found by customer id, phone or email, created when new; tickets point to them so
-- a ticket can show the customer's earlier tickets.
CREATE TABLE customers (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id  text UNIQUE,
    -- Digits only, so "138-1234-5678" and "13812345678" are one customer.
    phone        text,
    -- Lower-cased.
    email        text,
    name         text,
    tier         text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX customers_phone ON customers (phone) WHERE phone IS NOT NULL;
CREATE INDEX customers_email ON customers (email) WHERE email IS NOT NULL;

ALTER TABLE tickets ADD COLUMN customer_ref bigint REFERENCES customers (id);
CREATE INDEX tickets_customer_ref ON tickets (customer_ref, received_at);
