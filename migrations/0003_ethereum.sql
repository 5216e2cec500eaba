-- Ethereum funding (issue 4).
--
-- Every Ethereum permission is paid to the one service address (ETH_SERVICE_ADDRESS), so the uniqueness of
-- permissions.payment_address, which gives each Zcash permission an address of its own, is kept for the other
-- funding sources only. Payments stay unique per (funding_source, txid, output_index) as before.
ALTER TABLE permissions DROP CONSTRAINT permissions_payment_address_key;
CREATE UNIQUE INDEX permissions_payment_address_unique ON permissions (payment_address)
    WHERE funding_source <> 'ethereum';

-- The EIP-712 authorization a wallet signed for each Ethereum permission, kept for audit: the typed data as
-- signed and the signature. A wallet's nonce authorizes one permission only on a chain; the UNIQUE constraint
-- (not the gateway's memory) refuses a reused one, across every gateway replica.
CREATE TABLE ethereum_authorizations (
    id             bigserial PRIMARY KEY,
    permission_id  uuid NOT NULL UNIQUE REFERENCES permissions (id),
    chain_id       bigint NOT NULL CHECK (chain_id > 0),
    wallet         text NOT NULL,
    nonce          numeric(78, 0) NOT NULL CHECK (nonce >= 0),
    expiry         numeric(20, 0) NOT NULL CHECK (expiry > 0),  -- Unix seconds, as signed (uint64)
    typed_data     jsonb NOT NULL,
    signature      text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (chain_id, wallet, nonce)
);
