-- Error logs (`POST/GET /logs/error`, agents' `agent_error` events): the original's
-- `error_logs` table (`models/error_logs.py`), same columns, enum and indexes.

CREATE TYPE errorlog_severity AS ENUM ('critical', 'error', 'warning');

CREATE TABLE error_logs (
    id             uuid PRIMARY KEY DEFAULT uuid_generate_v4(),
    created_at     timestamptz DEFAULT now(),
    severity       errorlog_severity,
    source         varchar,
    "user"         uuid REFERENCES users (uuid),
    is_read        boolean DEFAULT false,
    is_cleared     boolean DEFAULT false,
    message        text,
    context_lang   varchar,
    context_env    jsonb,
    request_url    varchar,
    request_status integer,
    traceback      text
);
CREATE INDEX ix_error_logs_created_at ON error_logs (created_at);
CREATE INDEX ix_error_logs_severity ON error_logs (severity);
CREATE INDEX ix_error_logs_user ON error_logs ("user");
CREATE INDEX ix_error_logs_is_read ON error_logs (is_read);
CREATE INDEX ix_error_logs_is_cleared ON error_logs (is_cleared);
