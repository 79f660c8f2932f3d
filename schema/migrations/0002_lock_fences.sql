-- Fencing tokens of the manager's cluster-wide locks.
--
-- Every acquisition of a named lock gets a token that is larger than any earlier one. The holder
-- records it here when it acquires the lock, and every transaction it writes under the lock
-- calls bai_check_fence(name, token) first. A holder whose lock expired while it was paused
-- (and was then taken by another worker) therefore has its writes rejected: its token is older
-- than the one on record. The row lock the check takes also orders the writers of one lock.

CREATE TABLE lock_fences (
    name        varchar(128) PRIMARY KEY,
    token       bigint NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Records `lock_token` for `lock_name` unless a newer token is on record; raises SQLSTATE BF001
-- ("stale fencing token") in that case.
CREATE FUNCTION bai_check_fence(lock_name varchar, lock_token bigint) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO lock_fences AS f (name, token) VALUES (lock_name, lock_token)
    ON CONFLICT (name) DO UPDATE SET token = EXCLUDED.token, updated_at = now()
        WHERE f.token <= EXCLUDED.token;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'stale fencing token % for lock %: a newer holder exists', lock_token, lock_name
            USING ERRCODE = 'BF001';
    END IF;
END
$$;

-- Tokens of the pg_advisory backend.
CREATE SEQUENCE lock_fence_tokens;
