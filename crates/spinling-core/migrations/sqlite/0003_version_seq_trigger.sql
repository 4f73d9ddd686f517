-- A version is published by one INSERT; the function's counter follows it in the
-- same statement, so the write lock is held for one statement only.
CREATE TRIGGER IF NOT EXISTS function_versions_advance_seq
AFTER INSERT ON function_versions
BEGIN
    UPDATE functions SET version_seq = NEW.version_number
    WHERE id = NEW.function_id AND version_seq < NEW.version_number;
END;
