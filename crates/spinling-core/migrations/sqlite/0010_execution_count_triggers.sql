-- An execution is recorded by one INSERT; the count of what it ran (the function's current
-- code, or a version) follows in the same statement, so that a sync execution, stored once
-- it has ended, commits once.
CREATE TRIGGER IF NOT EXISTS executions_count_function
AFTER INSERT ON executions WHEN NEW.function_version = 0
BEGIN
    UPDATE functions SET count = count + 1,
        updated_at = COALESCE(NEW.updated_at, NEW.created_at)
    WHERE id = NEW.function_id;
END;

CREATE TRIGGER IF NOT EXISTS executions_count_version
AFTER INSERT ON executions WHEN NEW.function_version > 0
BEGIN
    UPDATE function_versions SET count = count + 1,
        updated_at = COALESCE(NEW.updated_at, NEW.created_at)
    WHERE function_id = NEW.function_id AND version_number = NEW.function_version;
END;
