-- A sign-up not yet confirmed keeps what the request said (the name typed, when, from
-- where) beside the record instead of over it: the name and consent evidence of a stored
-- address change only when the person confirms.
ALTER TABLE subscribers ADD COLUMN pending_name TEXT NOT NULL DEFAULT '';
ALTER TABLE subscribers ADD COLUMN pending_consent_ms BIGINT;
ALTER TABLE subscribers ADD COLUMN pending_consent_source TEXT;
ALTER TABLE subscribers ADD COLUMN pending_consent_ip TEXT;
ALTER TABLE subscribers ADD COLUMN pending_consent_user_agent TEXT;
